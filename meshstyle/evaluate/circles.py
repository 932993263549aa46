"""The circles metric: red discs measured on the surface they are painted on (see metrics.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

from meshstyle.evaluate.rendering import RenderedView, back_project

REDNESS_THRESHOLD = 0.5      # r - max(g, b): halfway between pure red (1) and white (0)


@dataclass
class Circle:
    """One red blob measured on the surface it is painted on."""
    radius_m: float            # radius of the disc with the blob's surface area
    stretch: float             # major / minor axis of its surface ellipse
    depth_m: float             # mean z-depth of its pixels
    angle_deg: float           # viewing angle at its centre (0 = facing the camera)


def red_mask(image: np.ndarray) -> np.ndarray:
    """Pixels closer to pure red than to white (see the module doc)."""
    image = np.asarray(image, dtype=np.float32)
    return image[..., 0] - np.maximum(image[..., 1], image[..., 2]) > REDNESS_THRESHOLD


def has_red_discs(style_image: np.ndarray) -> bool:
    return float(red_mask(style_image[..., :3]).mean()) >= 0.005


def find_circles(view: RenderedView, *, already_red: np.ndarray | None = None, min_pixels: int = 20,
                 max_bend_deg: float = 10.0, min_ellipse_iou: float = 0.8) -> list[Circle]:
    """Measure every usable red blob of one view on its surface (module doc, steps 1-3).

    already_red: (H,W) pixels that are red in the mesh's own colours; blobs mostly made of them
    (a red rug, not a stroke) are not counted.
    """
    fragments = view.fragments
    on_mesh = fragments.mask.numpy()
    depth = fragments.depth.numpy().astype(np.float64)
    normals = fragments.normal.numpy().astype(np.float64)
    height, width = on_mesh.shape
    labels, _ = ndimage.label(red_mask(view.image) & on_mesh)
    camera = view.camera
    focal_area = camera.K[0, 0] * camera.K[1, 1]
    circles = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        rows_box, cols_box = box
        if rows_box.start == 0 or cols_box.start == 0 or rows_box.stop == height or cols_box.stop == width:
            continue
        # One pixel of margin around the blob for its ring (the border case is excluded above).
        window = (slice(rows_box.start - 1, rows_box.stop + 1), slice(cols_box.start - 1, cols_box.stop + 1))
        blob = labels[window] == index
        if blob.sum() < min_pixels:
            continue
        ring = ndimage.binary_dilation(blob) & ~blob
        if not on_mesh[window][ring].all():
            continue
        if _ellipse_iou(blob) < min_ellipse_iou:
            continue

        rows, cols = np.nonzero(blob)
        rows, cols = rows + window[0].start, cols + window[1].start
        if already_red is not None and already_red[rows, cols].mean() > 0.5:
            continue
        blob_normals = normals[rows, cols]
        plane_normal = blob_normals.mean(0)
        plane_normal /= np.linalg.norm(plane_normal)
        if (blob_normals @ plane_normal).min() < np.cos(np.radians(max_bend_deg)):
            continue
        points, rays = back_project(camera, rows, cols, depth[rows, cols])
        centre = points.mean(0)

        ring_rows, ring_cols = np.nonzero(ring)
        ring_rows, ring_cols = ring_rows + window[0].start, ring_cols + window[1].start
        ring_points, _ = back_project(camera, ring_rows, ring_cols, depth[ring_rows, ring_cols])
        # Something in front of or behind the blob's surface cuts it: its measured shape is partial.
        if np.abs((ring_points - centre) @ plane_normal).max() > 0.02 * depth[rows, cols].mean():
            continue

        ray_lengths = np.linalg.norm(rays, axis=1)
        world_rays = (rays / ray_lengths[:, None]) @ camera.cam_to_world[:3, :3].T
        cos_view = np.abs(world_rays @ plane_normal).clip(1e-3, 1.0)
        # Surface area seen by each pixel: depth^2 cos(off-axis) / (fx fy cos(view angle)).
        area = depth[rows, cols] ** 2 / ray_lengths / (focal_area * cos_view)

        axis_u = np.cross(plane_normal, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis_u) < 0.1:
            axis_u = np.cross(plane_normal, [0.0, 1.0, 0.0])
        axis_u /= np.linalg.norm(axis_u)
        axis_v = np.cross(plane_normal, axis_u)
        in_plane = np.stack([(points - centre) @ axis_u, (points - centre) @ axis_v], axis=1)
        weights = area / area.sum()
        mean = weights @ in_plane
        offsets = in_plane - mean
        moments = (offsets * weights[:, None]).T @ offsets
        minor_var, major_var = np.linalg.eigvalsh(moments)
        if minor_var <= 0:
            continue

        centre_ray = np.linalg.solve(camera.K, [cols.mean(), rows.mean(), 1.0])
        centre_ray = camera.cam_to_world[:3, :3] @ (centre_ray / np.linalg.norm(centre_ray))
        circles.append(Circle(
            radius_m=float(np.sqrt(area.sum() / np.pi)),
            stretch=float(np.sqrt(major_var / minor_var)),
            depth_m=float(depth[rows, cols].mean()),
            angle_deg=float(np.degrees(np.arccos(min(1.0, abs(centre_ray @ plane_normal))))),
        ))
    return circles


def _ellipse_iou(blob: np.ndarray) -> float:
    """Overlap of a pixel blob with the ellipse of its own second moments (1 for a clean ellipse)."""
    # Room for a moment ellipse that reaches beyond the blob's box (an L-shaped blob's does).
    blob = np.pad(blob, max(blob.shape) // 2)
    rows, cols = np.nonzero(blob)
    points = np.stack([rows, cols], axis=1).astype(np.float64)
    mean = points.mean(0)
    covariance = np.cov((points - mean).T, bias=True) + np.eye(2) / 12.0   # pixels are squares
    # A uniform ellipse has covariance (semi-axes^2)/4, so it is {x : x^T C^-1 x <= 4}.
    grid_rows, grid_cols = np.mgrid[0:blob.shape[0], 0:blob.shape[1]]
    offsets = np.stack([grid_rows - mean[0], grid_cols - mean[1]], axis=-1)
    inside = np.einsum("...i,ij,...j->...", offsets, np.linalg.inv(covariance), offsets) <= 4.0
    return float((inside & blob).sum() / (inside | blob).sum())


def circle_metrics(views: list[RenderedView], originals: list[RenderedView] | None = None, *,
                   min_pixels: int = 20) -> dict[str, float]:
    """Figures over the blobs of all views; `originals` (the same views with the initial texture)
    rule out blobs that were red before stylization."""
    already_red = [None] * len(views) if originals is None else [red_mask(view.image) for view in originals]
    circles = [circle for view, red in zip(views, already_red)
               for circle in find_circles(view, already_red=red, min_pixels=min_pixels)]
    if not circles:
        return {"skipped": "no red discs found in the views"}
    radius = np.array([c.radius_m for c in circles])
    stretch = np.array([c.stretch for c in circles])
    depth = np.array([c.depth_m for c in circles])
    angle = np.array([c.angle_deg for c in circles])
    median = float(np.median(radius))
    return {
        "radius_median_m": median,
        "radius_spread": float(np.median(np.abs(radius - median)) / median),
        "stretch_median": float(np.median(stretch)),
        "radius_depth_corr": _spearman(radius, depth),
        "stretch_angle_corr": _spearman(stretch, angle),
        "count": float(len(circles)),
        "views": float(len(views)),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)
