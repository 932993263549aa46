"""The coverage metric: the share of the surface and of the texture that the cameras see (see metrics.py)."""
from __future__ import annotations

import numpy as np

from meshstyle.atlas.unwrap import rasterize_atlas
from meshstyle.geometry.camera import Camera
from meshstyle.geometry.scene import TexturedMesh
from meshstyle.raster.fragments import Fragments

MAX_COVERAGE_SIZE = 1024


def coverage_metrics(cameras: list[Camera], fragments: list[Fragments], mesh: TexturedMesh, *,
                     max_size: int = MAX_COVERAGE_SIZE, depth_tolerance: float = 0.02) -> dict[str, float]:

    size = int(min(max(mesh.texture.shape[:2]), max_size))
    texel_face, texel_bary = rasterize_atlas(mesh.uv, size)
    used = texel_face >= 0
    used_count = int(used.sum())
    if used_count == 0:
        return {"skipped": "the atlas has no charts"}
    faces = texel_face[used]
    corners = np.asarray(mesh.vertices, dtype=np.float64)[mesh.faces[faces]]     # (T,3,3)
    points = np.einsum("tk,tkd->td", texel_bary[used].astype(np.float64), corners)
    seen = np.zeros(len(points), dtype=bool)
    for camera, view in zip(cameras, fragments):
        seen |= _visible(points, faces, camera, view, depth_tolerance)
    unseen = used_count - int(seen.sum())
    return {
        "seen_share": float(seen.sum() / used_count),
        "unseen_share": float(unseen / used_count),
        "unseen_texels": float(unseen),
        "used_texels": float(used_count),
        "atlas_size": float(size),
        "views": float(len(cameras)),
    }


def _visible(points: np.ndarray, faces: np.ndarray, camera: Camera, fragments: Fragments,
             depth_tolerance: float) -> np.ndarray:
    """Which surface points the view sees: in the image and not behind what its pixel shows."""
    world_to_cam = np.linalg.inv(camera.cam_to_world)
    points_cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = points_cam[:, 2]
    in_front = z > 1e-6
    pixels = points_cam @ camera.K.T
    safe_z = np.where(in_front, z, 1.0)
    cols = np.round(pixels[:, 0] / safe_z).astype(np.int64)
    rows = np.round(pixels[:, 1] / safe_z).astype(np.int64)
    inside = in_front & (cols >= 0) & (cols < fragments.width) & (rows >= 0) & (rows < fragments.height)
    rows, cols, z = rows[inside], cols[inside], z[inside]
    pixel_face = fragments.face_id.numpy()[rows, cols]
    pixel_depth = fragments.depth.numpy()[rows, cols]
    # Its own face, or something at its depth (a neighbouring face of the same surface); at grazing
    # angles the depth changes fast across a pixel and the face test carries it.
    same_surface = (pixel_face == faces[inside]) | (np.abs(pixel_depth - z) <= depth_tolerance * z)
    visible = np.zeros(len(points), dtype=bool)
    visible[inside] = fragments.mask.numpy()[rows, cols] & same_surface
    return visible
