"""A run's cameras for other tools, in nerfstudio's two JSON forms, in the output frame (stylized.glb's).

- `transforms.json` (nerfstudio's data format, also instant-ngp's): per-frame OpenCV-model
  intrinsics (`fl_x fl_y cx cy w h`) and `transform_matrix`, a 4x4 camera-to-world with OpenGL camera
  axes (x right, y up, z backwards). `meshstyle render --cameras transforms.json` reads it back.
- `camera_path.json` (what `ns-render camera-path` replays): `camera_to_world` flattened row-major
  (OpenGL axes), vertical `fov` in degrees and `aspect` per keyframe, one render size for all.

Our cameras are OpenCV (y down, z forward): flipping the y and z axis columns converts them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from meshstyle.geometry.camera import Camera
from meshstyle.errors import InputError
from meshstyle.common.io import write_json

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])   # its own inverse


def _opengl(camera: Camera) -> np.ndarray:
    return np.asarray(camera.cam_to_world, dtype=np.float64) @ OPENCV_TO_OPENGL


def transforms_document(cameras: list[Camera], image_pattern: str = "{index:04d}.png") -> dict:
    frames = []
    for index, camera in enumerate(cameras):
        K = camera.K
        frames.append({"file_path": image_pattern.format(index=index),
                       "fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]),
                       # nerfstudio's principal point is in pixel-corner coordinates, ours at pixel centres
                       "cx": float(K[0, 2]) + 0.5, "cy": float(K[1, 2]) + 0.5,
                       "w": int(camera.width), "h": int(camera.height),
                       "transform_matrix": _opengl(camera).tolist()})
    first = cameras[0]
    return {"camera_model": "OPENCV", "w": int(first.width), "h": int(first.height),
            "fl_x": frames[0]["fl_x"], "fl_y": frames[0]["fl_y"], "cx": frames[0]["cx"], "cy": frames[0]["cy"],
            "frames": frames}


def camera_path_document(cameras: list[Camera], fps: float = 30.0) -> dict:
    first = cameras[0]
    keyframes = []
    for camera in cameras:
        fov = float(np.degrees(2 * np.arctan(0.5 * camera.height / camera.K[1, 1])))
        keyframes.append({"camera_to_world": _opengl(camera).reshape(-1).tolist(), "fov": fov,
                          "aspect": camera.width / camera.height})
    return {"camera_type": "perspective", "render_width": int(first.width), "render_height": int(first.height),
            "fps": fps, "seconds": len(cameras) / fps, "camera_path": keyframes}


def write_run_cameras(result: str | Path, path: str | Path, form: str = "auto") -> int:
    """The optimisation cameras of a run folder (output frame) as `form` (transforms | camera_path |
    auto: by file name); returns how many were written."""
    from meshstyle.outputs.run_folder import load_result

    loaded = load_result(result)
    if not loaded.cameras:
        raise InputError(result, "holds no cameras (export --cameras needs a run folder with run.json)")
    path = Path(path)
    if form == "auto":
        form = "camera_path" if "camera_path" in path.name else "transforms"
    if form == "camera_path":
        write_json(path, camera_path_document(loaded.cameras))
    elif form == "transforms":
        write_json(path, transforms_document(loaded.cameras))
    else:
        raise InputError("--camera-format", f"unknown camera format '{form}' (auto, transforms, camera_path)")
    return len(loaded.cameras)
