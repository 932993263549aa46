"""A scan's up axis and kind from its camera poses, levelled with the mesh's floor."""
from __future__ import annotations

import math

import numpy as np

from meshstyle.geometry.camera import Camera
from meshstyle.geometry.mesh import corner_cross


def up_from_cameras(cameras: list[Camera]) -> tuple[float, float, float]:
    """World up as the cameras hold it.

    Handheld cameras pitch a lot but hardly roll, so their x axes (image right) are nearly
    horizontal: up is the direction most perpendicular to all of them, signed like the mean image-up
    axis (-y in OpenCV). When the cameras all face one way (x axes nearly parallel) that direction is
    undetermined, and the mean image-up axis itself is the estimate.
    """
    rotations = np.array([camera.cam_to_world[:3, :3] for camera in cameras])
    mean_up = -rotations[:, :, 1].mean(axis=0)
    right_axes = rotations[:, :, 0]
    eigenvalues, eigenvectors = np.linalg.eigh(right_axes.T @ right_axes / len(cameras))
    # Yaw spread: the second eigenvalue is ~sin^2 of the spread of the x axes about their mean.
    up = eigenvectors[:, 0] if eigenvalues[1] > 0.05 else mean_up
    if np.dot(up, mean_up) < 0:
        up = -up
    norm = np.linalg.norm(up)
    if not np.isfinite(norm) or norm < 1e-6:
        return (0.0, 0.0, 1.0)
    return tuple(float(value) for value in up / norm)


def level_with_floor(up: tuple[float, float, float], vertices: np.ndarray, faces: np.ndarray,
                     cone_deg: float = 15.0, min_share: float = 0.05) -> tuple[float, float, float]:
    """`up` refined to the normal of the scan's horizontal surfaces (floor, tables, counters).

    The cameras give up to a few degrees (their residual roll); the faces within `cone_deg` of it
    that are flat and level settle it. Kept as is when such faces hold under `min_share` of the area.
    """
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    normals = corner_cross(corners)
    double_area = np.linalg.norm(normals, axis=1)
    normals /= np.maximum(double_area, 1e-20)[:, None]
    refined = np.asarray(up, dtype=np.float64)
    for _ in range(3):   # each pass re-selects the level faces around the better estimate
        level = np.abs(normals @ refined) > math.cos(math.radians(cone_deg))
        if double_area[level].sum() < min_share * double_area.sum():
            break
        # Principal direction of the level faces' normals (floors face up, ceilings down: sign-free).
        weighted = normals[level] * double_area[level, None]
        direction = np.linalg.eigh(weighted.T @ normals[level])[1][:, -1]
        refined = direction if np.dot(direction, up) > 0 else -direction
    return tuple(float(value) for value in refined)


def kind_from_cameras(cameras: list[Camera], bounds: np.ndarray) -> str:
    """"room" when most cameras stand inside the mesh's bounding box (a walkthrough capture),
    "object" when they surround it."""
    centres = np.array([camera.center for camera in cameras])
    inside = np.all((centres >= bounds[0]) & (centres <= bounds[1]), axis=1)
    return "room" if inside.mean() > 0.5 else "object"
