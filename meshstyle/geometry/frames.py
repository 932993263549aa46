"""Coordinate frames of inputs and outputs (up axis, units) and the transforms between them.

Three frames matter:

- the *input frame*: coordinates as written in the user's file or scan (its own units and up axis);
- the *scene frame*, where the pipeline works: the input's axes, scaled to metres (`Scene.up` says
  which direction is up, `Scene.unit_scale` how input units become metres);
- the *output frame* of every file a run writes: glTF's, +Y up, metres. `stylized.obj` uses it too
  unless `export.obj_frame = "input"`.

input -> output is `input_to_output(scene)`: a uniform scale (units) followed by the rotation that
takes the scene's up axis to +Y about their common perpendicular (for +Z up: x stays, z becomes y,
y becomes -z, as Blender's glTF exporter does). run.json records it as a 4x4 (row-major,
column-vector convention: p_out = M @ [p_in, 1]).

Which up axis an input gets with `--up auto`: glTF/GLB +Y (the format says so); OBJ +Y (what
Blender, three.js and model sites write); PLY, STL, OFF +Z (ScanNet and most scanners and CAD
tools); scan folders from the capture (cameras' average up, levelled with the floor; ScanNet +Z);
built-in scenes +Z.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, get_args

import numpy as np

from meshstyle.config import ObjFrame, UpAxis
from meshstyle.errors import InputError
from meshstyle.geometry.axes import up_to_gltf
from meshstyle.geometry.camera import Camera

if TYPE_CHECKING:
    from meshstyle.geometry.scene import Scene

GLTF_UP = (0.0, 1.0, 0.0)
UP_CHOICES = get_args(UpAxis)
AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0),
        "-x": (-1.0, 0.0, 0.0), "-y": (0.0, -1.0, 0.0), "-z": (0.0, 0.0, -1.0)}
# Metres per input unit.
UNITS = {"m": 1.0, "dm": 0.1, "cm": 0.01, "mm": 0.001, "km": 1000.0, "in": 0.0254, "ft": 0.3048, "yd": 0.9144}
OBJ_FRAMES = get_args(ObjFrame)
OUTPUT_FRAME = "glTF: +Y up, metres"


def up_axis(name: str, source: str = "scene.up") -> tuple[float, float, float] | None:
    """The unit vector of an `--up` choice; None for "auto" (the input's own convention)."""
    key = str(name).strip().lower().lstrip("+")
    if key == "auto":
        return None
    if key not in AXES:
        raise InputError(source, f"unknown up axis '{name}' (choose from {', '.join(UP_CHOICES)})")
    return AXES[key]


def unit_scale(name: str, source: str = "scene.units") -> float:
    """Metres per unit of an `--units` choice."""
    key = str(name).strip().lower()
    if key not in UNITS:
        raise InputError(source, f"unknown unit '{name}' (choose from {', '.join(UNITS)})")
    return UNITS[key]


def check_obj_frame(name: str, source: str = "export.obj_frame") -> str:
    if name not in OBJ_FRAMES:
        raise InputError(source, f"unknown OBJ frame '{name}' (choose from {', '.join(OBJ_FRAMES)})")
    return name


def scene_to_output(scene: "Scene") -> np.ndarray:
    """4x4 from the scene frame (metres, input axes) to the output frame: a rotation."""
    return up_to_gltf(scene.up)


def input_to_output(scene: "Scene") -> np.ndarray:
    """4x4 from the input's own coordinates to the output frame: scale to metres, then rotate."""
    return scene_to_output(scene) @ np.diag([scene.unit_scale] * 3 + [1.0])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def transform_pose(matrix: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """A camera-to-world pose moved by a similarity `matrix`: its centre maps like a point, its
    axes rotate (the scale is divided out, so the pose stays orthonormal)."""
    linear = matrix[:3, :3]
    scale = np.cbrt(np.linalg.det(linear))
    pose = np.eye(4)
    pose[:3, :3] = (linear / scale) @ cam_to_world[:3, :3]
    pose[:3, 3] = linear @ cam_to_world[:3, 3] + matrix[:3, 3]
    return pose


def transform_camera(matrix: np.ndarray, camera: Camera) -> Camera:
    return Camera(K=camera.K.copy(), cam_to_world=transform_pose(matrix, camera.cam_to_world),
                  width=camera.width, height=camera.height)


def apply_scene_options(scene: "Scene", up: str = "auto", units: str = "m") -> "Scene":
    """`--up` / `--units` on a loaded scene: rescale it to metres (photos' poses too) and set its up
    axis. Both are given in the input's own axes; "auto" keeps what the loader chose."""
    scale = unit_scale(units)
    axis = up_axis(up)
    if axis is not None:
        scene.up = axis
        scene.up_source = "--up"
    if scale != 1.0:
        scene.vertices = np.asarray(scene.vertices, dtype=np.float64) * scale
        for photo in scene.photos:
            photo.camera = _scaled_position(photo.camera, scale)
            if photo.depth_camera is not None:
                photo.depth_camera = _scaled_position(photo.depth_camera, scale)
        scene.unit_scale = scene.unit_scale * scale
    return scene


def _scaled_position(camera: Camera, scale: float) -> Camera:
    return transform_camera(np.diag([scale, scale, scale, 1.0]), camera)


def frame_record(scene: "Scene", obj_frame: str = "output") -> dict:
    """What run.json says about frames: enough to map the input onto the outputs and back."""
    return {
        "output": OUTPUT_FRAME,
        "obj_frame": obj_frame,
        "input_up": [float(value) for value in scene.up],
        "up_source": scene.up_source,
        "unit_scale": float(scene.unit_scale),
        "input_to_output": input_to_output(scene).tolist(),
    }
