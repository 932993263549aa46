"""A scan's photo as a view's content target, with the pixels that may be trusted (depth occlusion)."""
from __future__ import annotations

import numpy as np
import torch

from meshstyle.common.io import read_image
from meshstyle.errors import InputError
from meshstyle.geometry.camera import Camera
from meshstyle.geometry.scene import Photo
from meshstyle.inputs.scans import Intrinsics
from meshstyle.raster.fragments import Fragments


def photo_pixels(photo: Photo, height: int, width: int) -> torch.Tensor:
    """(3,H,W) the photo's colours resized (antialiased) to a view of `height` x `width` pixels."""
    pixels = torch.from_numpy(read_image(photo.color_path)).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(pixels, size=(height, width), mode="bilinear",
                                           align_corners=False, antialias=True)[0].clamp(0, 1)


def content_target(photo: Photo, camera: Camera, fragments: Fragments,
                   depth_tolerance: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo as the content target of a view rendered with `fragments`, and where to trust it.

    Returns the (3,H,W) photo resized to the fragments' size (antialiased) and an (H,W) bool mask
    that is False off the mesh and where the scan's depth disagrees with the mesh's: the photo shows
    something the mesh does not have there (an occluder, a hole, misregistration).

    `depth_tolerance` is *relative* to the rendered depth (0.1 = 10%): depth sensor noise grows with
    distance, and one default then fits tabletop and room scans. A depth of 0 (no measurement) is
    unknown, so such pixels are kept. The photo and its depth image share one pose; a depth image on
    its own pixel grid (`photo.depth_camera`) is looked up through its own intrinsics.
    """
    height, width = fragments.height, fragments.width
    device = fragments.mask.device
    target = photo_pixels(photo, height, width)
    valid = fragments.mask.clone()
    if photo.depth_path is not None:
        scan_depth = _scan_depth_at(photo, camera, height, width)
        rendered = fragments.depth.cpu().numpy()
        disagrees = (scan_depth > 0) & (np.abs(scan_depth - rendered) > depth_tolerance * rendered)
        valid &= torch.from_numpy(~disagrees).to(device)
    return target.to(device), valid


def _scan_depth_at(photo: Photo, camera: Camera, height: int, width: int) -> np.ndarray:
    """The scan's depth (metres, 0 = unknown) seen through each pixel of `camera`'s image.

    Both cameras share the optical centre, so a pixel maps to the depth image by a homography of
    the intrinsics alone. Nearest sampling: interpolating depth would invent surfaces at edges.
    """
    import imageio.v3 as iio

    try:
        millimetres = np.asarray(iio.imread(photo.depth_path))
    except Exception as exc:  # imageio raises many types for a corrupt file
        raise InputError(photo.depth_path, f"cannot read depth image ({type(exc).__name__})") from None
    if millimetres.ndim != 2:
        raise InputError(photo.depth_path, f"expected a single-channel 16-bit depth PNG, got shape {millimetres.shape}")
    depth_height, depth_width = millimetres.shape
    depth_camera = photo.depth_camera or photo.camera
    depth_K = Intrinsics(K=depth_camera.K, size=(depth_camera.width, depth_camera.height)).for_image(depth_width, depth_height)
    to_depth = depth_K @ np.linalg.inv(camera.K)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    x = to_depth[0, 0] * cols + to_depth[0, 1] * rows + to_depth[0, 2]
    y = to_depth[1, 1] * rows + to_depth[1, 2]
    w = to_depth[2, 2]
    u = np.rint(x / w).astype(np.int64)
    v = np.rint(y / w).astype(np.int64)
    inside = (u >= 0) & (u < depth_width) & (v >= 0) & (v < depth_height)
    depth = np.zeros((height, width), dtype=np.float32)
    depth[inside] = millimetres[v[inside], u[inside]].astype(np.float32) / 1000.0
    return depth
