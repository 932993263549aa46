"""NeRF `transforms.json`: the one reader of its cameras, for scan folders and camera files alike.

Poses are camera-to-world in OpenGL axes (x right, y up, z back), converted to ours (OpenCV).
Intrinsics come from `fl_x`/`fl_y`/`cx`/`cy` or `camera_angle_x`/`camera_angle_y`, file-wide or per
frame (instant-ngp allows per-frame ones; they win), in pixels of `w` x `h` or else of the image.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from meshstyle.errors import InputError
from meshstyle.geometry.camera import OPENGL_TO_OPENCV

CAMERA_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def camera_fields(document: dict, frame: dict) -> dict:
    """The camera keys that apply to `frame`: the file's, overridden by the frame's own."""
    return {**{key: document[key] for key in CAMERA_KEYS if key in document},
            **{key: frame[key] for key in CAMERA_KEYS if key in frame}}


def image_path(base: Path, file_path: str) -> Path:
    """`file_path` with or without its extension (Blender's synthetic scenes omit it)."""
    path = base / file_path
    if path.suffix.lower() in IMAGE_SUFFIXES or path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path.with_name(path.name + ".png")


def pose(matrix) -> np.ndarray | None:
    """4x4 camera-to-world in OpenCV axes from a 3x4 or 4x4 `transform_matrix`; None if it is neither."""
    try:
        gl = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if gl.shape == (3, 4):
        gl = np.vstack([gl, [0.0, 0.0, 0.0, 1.0]])
    return gl @ OPENGL_TO_OPENCV if gl.shape == (4, 4) else None


def stated_size(fields: dict, path: Path) -> tuple[int, int] | None:
    """(width, height) when the file states `w` and `h`."""
    if "w" not in fields or "h" not in fields:
        return None
    try:
        return int(fields["w"]), int(fields["h"])
    except (TypeError, ValueError):
        raise InputError(path, "'w' and 'h' must be integers") from None


def intrinsics(fields: dict, size: tuple[int, int], path: Path) -> np.ndarray:
    """K in pixels of `size` (width, height)."""
    if "fl_x" not in fields and "camera_angle_x" not in fields:
        raise InputError(path, "no focal length: give fl_x or camera_angle_x")
    width, height = size
    try:
        fx = float(fields["fl_x"]) if "fl_x" in fields else 0.5 * width / math.tan(0.5 * float(fields["camera_angle_x"]))
        if "fl_y" in fields:
            fy = float(fields["fl_y"])
        elif "camera_angle_y" in fields:
            fy = 0.5 * height / math.tan(0.5 * float(fields["camera_angle_y"]))
        else:
            fy = fx
        # NeRF tools put pixel centres at +0.5 (cx = w/2 is the image centre); ours are at integers.
        cx = float(fields.get("cx", width / 2)) - 0.5
        cy = float(fields.get("cy", height / 2)) - 0.5
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"bad camera intrinsics: {exc}") from None
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
