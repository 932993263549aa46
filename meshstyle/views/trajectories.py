"""Camera trajectories for rendering: the run's own poses, generated paths, or a camera file.

A trajectory is a plain `list[Camera]`. Files come in two formats:

- ours: a JSON list of `Camera.to_dict()` entries ({"K", "cam_to_world", "width", "height"}),
  written by `write_cameras`, so users can edit a path and feed it back;
- NeRF `transforms.json`: OpenGL camera axes (x right, y up, z backwards), converted here to
  OpenCV axes; intrinsics from `fl_x/fl_y/cx/cy/w/h` or `camera_angle_x`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from meshstyle.views import cameras as camera_paths
from meshstyle.geometry.camera import Camera, rescale_intrinsics
from meshstyle.inputs import nerf
from meshstyle.raster.rasterizer import Rasterizer
from meshstyle.config import CameraConfig
from meshstyle.errors import InputError
from meshstyle.common.io import write_json
from meshstyle.common.progress import warn
from meshstyle.geometry.scene import Scene, TexturedMesh

GENERATED_KINDS = ("orbit", "walkthrough")
DEFAULT_SIZE = (640, 480)
WALK_SECONDS_PER_KEY = 2.0     # a fly-through reaches a new key view about this often (at 30 fps)
WALK_MAX_LEG_M = 2.5           # preferred longest leg between key views (walking pace at 30 fps)
MAX_WALK_KEYS = 12
WALK_CANDIDATES_PER_KEY = 3    # views proposed per key view kept
WALK_CLEARANCE_M = 0.15        # legs of the fly-through keep this far from surfaces

# OpenGL camera axes (y up, z backwards) -> OpenCV (y down, z forward): flip the y and z columns.


def trajectory(kind: str, *, mesh: TexturedMesh | Scene, run_cameras: list[Camera] | None = None,
               frames: int | None = None, width: int | None = None, height: int | None = None,
               fov_deg: float | None = None, rng: np.random.Generator | None = None) -> list[Camera]:
    """Cameras to render `mesh` along.

    kind: `trajectory` (the run's or scan's own poses, resampled by a smooth spline), `orbit`,
    `walkthrough`, or the path of a camera JSON file (ours or NeRF `transforms.json`).
    frames: number of cameras; None keeps the given poses as they are (generated paths: 60).
    width, height: image size; None keeps the cameras' own size (generated paths: 640x480).
    Cameras rescaled to another size keep their vertical field of view; `fov_deg` overrides it.
    """
    if frames is not None and frames < 1:
        raise InputError("--frames", f"needs at least 1 frame, got {frames}")
    if kind in GENERATED_KINDS:
        return _generated(kind, mesh, frames or 60, width, height, fov_deg, rng)
    if kind == "trajectory":
        if not run_cameras:
            raise InputError("--cameras", "'trajectory' needs the run's or scan's cameras, and there are none; "
                             "use orbit, walkthrough or a camera file")
        poses = list(run_cameras)
        source = "trajectory"
    else:
        path = Path(kind)
        if not path.is_file():
            raise InputError(path, "no such camera file (or use trajectory, orbit or walkthrough)")
        poses = read_cameras(path, width=width, height=height)
        source = str(path)
    return _fit(poses, frames, width, height, fov_deg, source)


def read_cameras(path: str | Path, *, width: int | None = None, height: int | None = None) -> list[Camera]:
    """Cameras from our JSON format or a NeRF `transforms.json` (OpenGL axes converted).

    `width`/`height` only serve NeRF files that state no image size and have no image to read it from.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON camera file ({exc})") from None
    if isinstance(document, dict) and "frames" in document:
        cameras, skipped = _read_nerf(path, document, width, height)
    elif isinstance(document, list) or (isinstance(document, dict) and "cameras" in document):
        entries = document if isinstance(document, list) else document["cameras"]
        cameras, skipped = _read_ours(path, entries)
    else:
        raise InputError(path, "expected a list of cameras {K, cam_to_world, width, height} "
                               "or a NeRF transforms.json with 'frames'")
    if skipped:
        warn(f"{path}: skipped {skipped} camera(s) with non-finite poses")
    if not cameras:
        raise InputError(path, "contains no usable camera")
    return cameras


def write_cameras(path: str | Path, cameras: list[Camera]) -> None:
    """Write cameras in our JSON format (atomically); `read_cameras` / `--cameras FILE` read it back."""
    write_json(path, [camera.to_dict() for camera in cameras])


def resize(camera: Camera, width: int, height: int) -> Camera:
    """The camera for a `width` x `height` image with the same vertical field of view.

    Pixels keep their aspect ratio, so a wider image sees more to the sides; the principal point keeps
    its relative position. Scaling is about pixel corners (pixel centres sit at integer coordinates).
    """
    if (width, height) == (camera.width, camera.height):
        return camera
    scale = height / camera.height
    K = rescale_intrinsics(camera.K, scale, scale)
    # The principal point keeps its relative position across the wider (or narrower) image.
    K[0, 2] = (camera.K[0, 2] + 0.5) * width / camera.width - 0.5
    return Camera(K=K, cam_to_world=camera.cam_to_world.copy(), width=width, height=height)


def with_fov(camera: Camera, fov_deg: float) -> Camera:
    """The same camera with vertical field of view `fov_deg` (pixel aspect ratio kept)."""
    if not 0.0 < fov_deg < 180.0:
        raise InputError("--fov", f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    K = camera.K.astype(np.float64).copy()
    focal_y = 0.5 * camera.height / np.tan(np.radians(fov_deg) / 2)
    K[0, 0] *= focal_y / K[1, 1]
    K[1, 1] = focal_y
    return Camera(K=K, cam_to_world=camera.cam_to_world.copy(), width=camera.width, height=camera.height)


def _generated(kind: str, mesh: TexturedMesh | Scene, frames: int, width: int | None, height: int | None,
               fov_deg: float | None, rng: np.random.Generator | None) -> list[Camera]:
    scene = _as_scene(mesh, kind)
    default_width, default_height = DEFAULT_SIZE
    width, height = width or default_width, height or default_height
    fov_deg = CameraConfig.fov_deg if fov_deg is None else fov_deg
    if kind == "orbit":
        return camera_paths.orbit(scene, frames, width=width, height=height, fov_deg=fov_deg)
    rng = rng if rng is not None else np.random.default_rng(0)
    return walkthrough_path(scene, frames, rng, width=width, height=height, fov_deg=fov_deg)


def walkthrough_path(scene: Scene, frames: int, rng: np.random.Generator, *, width: int, height: int,
                     fov_deg: float) -> list[Camera]:
    """A smooth fly-through of a room: a spline through a few walkthrough views, visited in an order
    whose straight legs cross no surface.

    `cameras.walkthrough` spreads independent views over the room (right for optimisation, a strobe
    as a video); here they are key views, one per WALK_SECONDS_PER_KEY at 30 fps. Legs that would
    pass through furniture or walls are never taken; key views that cannot be reached are dropped.
    """
    keys = int(np.clip(round(frames / (30 * WALK_SECONDS_PER_KEY)), 2, MAX_WALK_KEYS))
    # Spare candidates, so that the tour can go round furniture that blocks the direct leg.
    rasterizer = Rasterizer(scene.vertices, scene.faces)   # one ray-casting scene for views and legs
    candidates = camera_paths.walkthrough(scene, WALK_CANDIDATES_PER_KEY * keys, rng, width=width,
                                          height=height, fov_deg=fov_deg, rasterizer=rasterizer)
    tour = [candidates[0]]
    remaining = list(candidates[1:])
    while remaining and len(tour) < keys:
        here = tour[-1].center
        reachable = [view for view in remaining if _clear_leg(rasterizer, here, view.center, scene.up)]
        if not reachable:
            break
        # Explore: of the views within a walking leg, the one farthest from where the tour has been
        # (else the nearest); short legs also keep the spline close to the straight, checked legs.
        visited = np.stack([view.center for view in tour])
        within = [view for view in reachable if np.linalg.norm(view.center - here) <= WALK_MAX_LEG_M]
        if within:
            chosen = max(within, key=lambda view: float(np.linalg.norm(visited - view.center, axis=1).min()))
        else:
            chosen = min(reachable, key=lambda view: float(np.linalg.norm(view.center - here)))
        tour.append(chosen)
        remaining = [view for view in remaining if view is not chosen]
    if len(tour) < keys:
        warn(f"walkthrough: only {len(tour)} of {keys} key views are reachable without passing through a "
             "surface; the fly-through is shorter")
    return camera_paths.interpolate(tour, frames)


def _clear_leg(rasterizer, start: np.ndarray, end: np.ndarray, up: tuple[float, float, float]) -> bool:
    """Whether the straight leg start -> end keeps WALK_CLEARANCE_M from every surface (probed by
    rays along the leg, shifted sideways and up and down by the clearance)."""
    leg = end - start
    length = float(np.linalg.norm(leg))
    if length < 1e-9:
        return True
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    side = np.cross(leg / length, up)
    side = side / np.linalg.norm(side) if np.linalg.norm(side) > 1e-6 else np.cross(up, [1.0, 0.0, 0.0])
    offsets = WALK_CLEARANCE_M * np.stack([np.zeros(3), side, -side, up, -up])
    hits = rasterizer.cast(start + offsets, np.broadcast_to(leg, offsets.shape))
    # The direction is the whole leg, so a hit at parameter t < 1 lies on it.
    return bool(np.all(hits.distance >= 1.0))


def _as_scene(mesh: TexturedMesh | Scene, kind: str) -> Scene:
    """Camera generators take a Scene; a bare textured mesh becomes one (kind from the path asked for)."""
    if isinstance(mesh, Scene):
        return mesh
    return Scene(name="mesh", vertices=np.asarray(mesh.vertices, dtype=np.float64),
                 faces=np.asarray(mesh.faces, dtype=np.int64),
                 kind="room" if kind == "walkthrough" else "object")


def _fit(cameras: list[Camera], frames: int | None, width: int | None, height: int | None,
         fov_deg: float | None, source: str) -> list[Camera]:
    """Bring given poses to the requested size, field of view and number of frames."""
    # One size for all before interpolating, so intrinsics blend between like cameras.
    width = width or cameras[0].width
    height = height or cameras[0].height
    cameras = [resize(camera, width, height) for camera in cameras]
    if frames is not None and frames != len(cameras):
        if len(cameras) == 1:
            cameras = cameras * frames
        else:
            cameras = camera_paths.interpolate(cameras, frames)
    if fov_deg is not None:
        cameras = [with_fov(camera, fov_deg) for camera in cameras]
    return cameras


def _read_ours(path: Path, entries: Any) -> tuple[list[Camera], int]:
    if not isinstance(entries, list):
        raise InputError(path, "'cameras' must be a list")
    cameras, skipped = [], 0
    for index, entry in enumerate(entries):
        try:
            camera = Camera.from_dict(entry)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, f"camera {index}: expected K (3x3), cam_to_world (4x4), width, height "
                                   f"({type(exc).__name__}: {exc})") from None
        _check_shapes(path, index, camera)
        if not (np.isfinite(camera.cam_to_world).all() and np.isfinite(camera.K).all()):
            skipped += 1
            continue
        cameras.append(camera)
    return cameras, skipped


def _read_nerf(path: Path, document: dict, width: int | None, height: int | None) -> tuple[list[Camera], int]:
    frames = document["frames"]
    if not isinstance(frames, list):
        raise InputError(path, "'frames' must be a list")
    cameras, skipped = [], 0
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict) or "transform_matrix" not in frame:
            raise InputError(path, f"frame {index} has no transform_matrix")
        cam_to_world = nerf.pose(frame["transform_matrix"])
        if cam_to_world is None:
            raise InputError(path, f"frame {index}: transform_matrix is not a 3x4 or 4x4 matrix of numbers")
        if not np.isfinite(cam_to_world).all():
            skipped += 1
            continue
        fields = nerf.camera_fields(document, frame)
        size = nerf.stated_size(fields, path) or _image_size(path, frame) or ((width, height) if width and height else None)
        if size is None:
            raise InputError(path, "no image size: give 'w' and 'h' (or keep the images beside the file)")
        cameras.append(Camera(K=nerf.intrinsics(fields, size, path), cam_to_world=cam_to_world,
                              width=size[0], height=size[1]))
    return cameras, skipped


def _image_size(path: Path, frame: dict) -> tuple[int, int] | None:
    """The size of the frame's image beside the file (the Blender NeRF scenes state no size)."""
    file_path = frame.get("file_path")
    if not isinstance(file_path, str):
        return None
    image = nerf.image_path(path.parent, file_path)
    if not image.is_file():
        return None
    try:
        with Image.open(image) as opened:
            return opened.size
    except OSError:
        raise InputError(image, "cannot read image to find the camera's image size") from None


def _check_shapes(path: Path, index: int, camera: Camera) -> None:
    if camera.K.shape != (3, 3) or camera.cam_to_world.shape != (4, 4):
        raise InputError(path, f"camera {index}: K must be 3x3 and cam_to_world 4x4, got "
                               f"{camera.K.shape} and {camera.cam_to_world.shape}")
    if camera.width < 1 or camera.height < 1:
        raise InputError(path, f"camera {index}: width and height must be positive")
