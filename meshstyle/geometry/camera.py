"""The pinhole camera every stage shares (OpenCV axes: x right, y down, z forward); a leaf module.

Pixel (u, v) has its centre at integer coordinates, so rescaling an image scales intrinsics about
the image corner (-0.5, -0.5), not about pixel 0's centre.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Pose axes of OpenGL / NeRF (x right, y up, z backward) to ours: cam_to_world_cv = cam_to_world_gl @ this.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Camera:
    K: np.ndarray             # (3,3) intrinsics in pixels of a (height, width) image
    cam_to_world: np.ndarray  # (4,4) pose, OpenCV axes
    width: int
    height: int

    def scaled(self, height: int) -> "Camera":
        """The same camera for an image `height` pixels high; the field of view is kept."""
        width = max(1, int(round(self.width * height / self.height)))
        K = rescale_intrinsics(self.K, width / self.width, height / self.height)
        return Camera(K=K, cam_to_world=self.cam_to_world.copy(), width=width, height=height)

    @property
    def center(self) -> np.ndarray:
        return self.cam_to_world[:3, 3]

    def to_dict(self) -> dict:
        return {"K": self.K.tolist(), "cam_to_world": self.cam_to_world.tolist(),
                "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, data: dict) -> "Camera":
        return cls(K=np.asarray(data["K"], dtype=np.float64),
                   cam_to_world=np.asarray(data["cam_to_world"], dtype=np.float64),
                   width=int(data["width"]), height=int(data["height"]))


def rescale_intrinsics(K: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """K for an image resized by (scale_x, scale_y): the first row (focal, skew, centre) scales with x,
    the second with y; centres scale about the image corner because pixel centres are integers."""
    K = np.asarray(K, dtype=np.float64).copy()
    K[0, :2] *= scale_x
    K[1, 1] *= scale_y
    K[0, 2] = (K[0, 2] + 0.5) * scale_x - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * scale_y - 0.5
    return K


def intrinsics_from_fov(width: int, height: int, fov_y_deg: float) -> np.ndarray:
    f = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes) at `eye` looking at `target`; world up is +z."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:  # looking straight up or down
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose
