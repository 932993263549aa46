"""Pinhole cameras (OpenCV axes: x right, y down, z forward) and camera generators."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    K: np.ndarray             # (3,3) intrinsics in pixels of a (height, width) image
    cam_to_world: np.ndarray  # (4,4) pose, OpenCV axes
    width: int
    height: int

    def scaled(self, height: int) -> "Camera":
        """The same camera for an image `height` pixels high; the field of view is kept."""
        s = height / self.height
        width = max(1, int(round(self.width * s)))
        K = self.K.copy().astype(np.float64)
        # Scale about pixel corners, not centres, so the image edges stay where they were.
        K[0, 0] *= width / self.width
        K[1, 1] *= s
        K[0, 2] = (K[0, 2] + 0.5) * width / self.width - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * s - 0.5
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
