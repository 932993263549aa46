"""Real scans: scan folders as scenes with photos, choosing frames, and photos as content targets.

A scan folder holds a mesh, colour photos, camera poses and intrinsics (DESIGN.md "Scene inputs").
Three layouts are read, detected from what the folder contains:

- NeRF: `transforms.json` (or `transforms_train.json`); OpenGL camera axes, converted to OpenCV.
- ScanNet export: `color/<i>.jpg`, `pose/<i>.txt`, `intrinsic/intrinsic_color.txt`, `depth/<i>.png`.
- 7-Scenes / BundleFusion: `frame-XXXXXX.{color.jpg|color.png,pose.txt,depth.png}`, in the folder or
  in subfolders (`frames/`, `seq-01/`, ...), intrinsics from `camera-intrinsics.txt` or `info.txt`.

Scans have thousands of frames, so `load_scan` keeps photos on disk (paths only) and checks each
frame cheaply: its pose file, and its image's *header* (size), never its pixels. Frames that fail a
check are skipped and counted in one warning per kind of check. `select_frames` then picks a few
sharp frames that together see most of the surface, and `content_target` turns one photo into the
content loss's target image with a mask of the pixels that may be trusted.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from meshstyle.views.cameras import Camera
from meshstyle.config import SceneConfig
from meshstyle.errors import InputError
from meshstyle.raster.fragments import Fragments
from meshstyle.common.progress import log, progress, warn
from meshstyle.geometry.scene import Photo, Scene

MESH_SUFFIXES = (".ply", ".obj", ".glb", ".gltf", ".off", ".stl")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# A stored rotation counts as rigid when R^T R is within this of I and det(R) within this of 1;
# loose enough for poses written with 6-8 digits, tight enough to reject scaled or sheared ones.
RIGID_TOLERANCE = 1e-2
# NeRF's OpenGL camera axes (x right, y up, z back) -> OpenCV (x right, y down, z forward).
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
# Share of an atlas that UV islands fill after packing with gutters (xatlas/UVAtlas on scans).
ATLAS_FILL = 0.6


# --------------------------------------------------------------------------- folder listings


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics as a scan folder states them."""
    K: np.ndarray                          # (3,3) in pixels of `size`
    size: tuple[int, int] | None = None    # (width, height) K belongs to, when the folder says

    def for_image(self, width: int, height: int) -> np.ndarray:
        """K in pixels of a (width, height) image: scaled per axis when the images were resized."""
        native_width, native_height = self.size or _size_from_principal_point(self.K, width, height)
        sx, sy = width / native_width, height / native_height
        K = self.K.astype(np.float64).copy()
        # Pixel centres sit at integer coordinates, so scale about the image corner (-0.5, -0.5).
        K[0, :2] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return K


@dataclass
class ScanFrame:
    """One frame as the folder lists it, before any check."""
    name: str
    color_path: Path
    pose: np.ndarray | None                # (4,4) camera-to-world, OpenCV axes; None = unreadable
    depth_path: Path | None = None
    intrinsics: Intrinsics | None = None   # None only when the image's size could not be read


@dataclass
class ScanListing:
    """What a layout reader finds in a scan folder."""
    layout: str                                       # "scannet" | "7scenes" | "nerf"
    frames: list[ScanFrame]                           # sorted by name (natural order)
    depth_intrinsics: Intrinsics | None = None        # only when depth has its own pixel grid
    up: tuple[float, float, float] | None = None      # known world up; None = from the cameras
    preferred_mesh: str | None = None                 # glob that picks the mesh among several
    kind: str | None = "room"                         # None = decide from where the cameras are


def load_scan(folder: str | Path, config: SceneConfig | None = None) -> Scene:
    """A scan folder as a room `Scene` whose photos are its usable frames (paths, loaded lazily)."""
    folder = Path(folder)
    config = config or SceneConfig()
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    listing = read_listing(folder, config)
    mesh_path = choose_mesh(folder, config.mesh, listing.preferred_mesh)
    frames = [listing.frames[i] for i in frame_subset(len(listing.frames), config.frames)]
    photos = usable_photos(frames, listing.depth_intrinsics, folder)

    from meshstyle.inputs.meshes import load_mesh_file  # loaders imports this module for folders

    mesh_scene = load_mesh_file(mesh_path)
    up = listing.up or level_with_floor(up_from_cameras([photo.camera for photo in photos]),
                                        mesh_scene.vertices, mesh_scene.faces)
    kind = listing.kind or _kind_from_cameras([photo.camera for photo in photos], mesh_scene.bounds)
    subset = f" selected of {len(listing.frames)}" if len(frames) < len(listing.frames) else ""
    log(f"{folder}: {listing.layout} scan, {len(photos)} usable of {len(frames)}{subset} frames, "
        f"mesh {mesh_path.name}")
    return dataclasses.replace(mesh_scene, name=folder.resolve().name, photos=photos, kind=kind,
                               up=up, source=str(folder))


def read_listing(folder: Path, config: SceneConfig) -> ScanListing:
    """Detect the folder's layout and list its frames."""
    for name in ("transforms.json", "transforms_train.json"):
        if (folder / name).is_file():
            return _read_nerf(folder, folder / name)
    if (folder / "color").is_dir() and (folder / "pose").is_dir():
        return _read_scannet(folder, config.intrinsics)
    frame_dirs = [path for path in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
                  if any(path.glob("frame-*.pose.txt"))]
    if frame_dirs:
        return _read_7scenes(folder, frame_dirs, config.intrinsics)
    raise InputError(folder, "not a scan folder: found no transforms.json, color/ + pose/ (ScanNet) "
                             "or frame-*.pose.txt (7-Scenes)")


def _read_scannet(folder: Path, intrinsics_file: str | None) -> ScanListing:
    sizes = _scannet_sizes(folder)
    if intrinsics_file:
        color_intrinsics, depth_intrinsics = read_intrinsics_file(Path(intrinsics_file))
    else:
        color_intrinsics, _ = read_intrinsics_file(folder / "intrinsic" / "intrinsic_color.txt",
                                                   size=sizes.get("color"))
        depth_file = folder / "intrinsic" / "intrinsic_depth.txt"
        depth_intrinsics = (read_intrinsics_file(depth_file, size=sizes.get("depth"))[0]
                            if depth_file.is_file() else None)
    colors = _files_by_stem(folder / "color", IMAGE_SUFFIXES)
    depths = _files_by_stem(folder / "depth", (".png",))
    frames = [ScanFrame(name=pose_path.stem,
                        color_path=colors.get(pose_path.stem, folder / "color" / f"{pose_path.stem}.jpg"),
                        pose=_read_pose(pose_path), depth_path=depths.get(pose_path.stem),
                        intrinsics=color_intrinsics)
              for pose_path in _files_by_stem(folder / "pose", (".txt",)).values()]
    # ScanNet's world is z-up (its meshes stand on the xy plane).
    return ScanListing(layout="scannet", frames=_sorted(frames), depth_intrinsics=depth_intrinsics,
                       up=(0.0, 0.0, 1.0), preferred_mesh="*_vh_clean_2.ply")


def _scannet_sizes(folder: Path) -> dict[str, tuple[int, int]]:
    """Colour and depth image sizes from ScanNet's `<scene>.txt` (colorWidth = 1296, ...), if any."""
    for path in sorted(folder.glob("*.txt")):
        values = _read_key_values(path)
        if "colorWidth" in values:
            sizes = {}
            for kind in ("color", "depth"):
                try:
                    sizes[kind] = (int(values[f"{kind}Width"]), int(values[f"{kind}Height"]))
                except (KeyError, ValueError):
                    pass
            return sizes
    return {}


FRAME_FILE = re.compile(r"^(frame-\d+)\.(pose\.txt|color\.(?:jpg|jpeg|png)|depth\.png)$")


def _read_7scenes(folder: Path, frame_dirs: list[Path], intrinsics_file: str | None) -> ScanListing:
    color_intrinsics, depth_intrinsics = _7scenes_intrinsics(folder, frame_dirs, intrinsics_file)
    frames = []
    for frame_dir in frame_dirs:
        files: dict[str, dict[str, Path]] = {}
        with os.scandir(frame_dir) as entries:
            for entry in entries:
                match = FRAME_FILE.match(entry.name)
                if match:
                    role = match.group(2).split(".")[0]
                    files.setdefault(match.group(1), {})[role] = Path(entry.path)
        # Several sequences (7-Scenes seq-01, seq-02) share one world frame; names keep them apart.
        prefix = "" if len(frame_dirs) == 1 else f"{frame_dir.relative_to(folder)}/"
        for stem, roles in files.items():
            if "pose" not in roles:
                continue
            frames.append(ScanFrame(name=prefix + stem,
                                    color_path=roles.get("color", frame_dir / f"{stem}.color.jpg"),
                                    pose=_read_pose(roles["pose"]), depth_path=roles.get("depth"),
                                    intrinsics=color_intrinsics))
    return ScanListing(layout="7scenes", frames=_sorted(frames), depth_intrinsics=depth_intrinsics,
                       up=None)


def _7scenes_intrinsics(folder: Path, frame_dirs: list[Path],
                        intrinsics_file: str | None) -> tuple[Intrinsics, Intrinsics | None]:
    if intrinsics_file:
        return read_intrinsics_file(Path(intrinsics_file))
    candidates = [folder / "camera-intrinsics.txt", folder / "info.txt"]
    candidates += [frame_dir / name for frame_dir in frame_dirs for name in ("camera-intrinsics.txt", "info.txt")]
    for path in candidates:
        if path.is_file():
            return read_intrinsics_file(path)
    raise InputError(folder, "no intrinsics found (camera-intrinsics.txt or info.txt); "
                             "pass --set scene.intrinsics=FILE")


NERF_CAMERA_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")


def _read_nerf(folder: Path, json_path: Path) -> ScanListing:
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(json_path, f"cannot read JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise InputError(json_path, "expected an object with a 'frames' list")
    shared = {key: meta[key] for key in NERF_CAMERA_KEYS if key in meta}
    frames = []
    for index, entry in enumerate(meta["frames"]):
        if not isinstance(entry, dict) or "file_path" not in entry:
            raise InputError(json_path, f"frame {index} has no file_path")
        color_path = _nerf_image_path(json_path.parent, str(entry["file_path"]))
        params = {**shared, **{key: entry[key] for key in NERF_CAMERA_KEYS if key in entry}}
        frames.append(ScanFrame(name=str(entry["file_path"]), color_path=color_path,
                                pose=_nerf_pose(entry.get("transform_matrix")),
                                intrinsics=_nerf_intrinsics(params, color_path, json_path)))
    _warn_outside(json_path, [frame.color_path for frame in frames])
    return ScanListing(layout="nerf", frames=_sorted(frames), up=None, kind=None)


def _warn_outside(json_path: Path, paths: list[Path]) -> None:
    """A downloaded transforms.json may name images anywhere ("../../home/..."): reading them is
    allowed (some datasets share an image folder) but never silent."""
    root = json_path.parent.resolve()
    outside = [path for path in paths if not path.resolve().is_relative_to(root)]
    if outside:
        warn(f"{json_path}: {len(outside)} of {len(paths)} frames point outside its folder "
             f"(first: {outside[0]})")


def _nerf_image_path(base: Path, file_path: str) -> Path:
    """`file_path` with or without its extension (Blender's synthetic scenes omit it)."""
    path = base / file_path
    if path.suffix.lower() in IMAGE_SUFFIXES or path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path.with_name(path.name + ".png")


def _nerf_pose(matrix) -> np.ndarray | None:
    try:
        pose = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if pose.shape == (3, 4):
        pose = np.vstack([pose, [0.0, 0.0, 0.0, 1.0]])
    return pose @ OPENGL_TO_OPENCV if pose.shape == (4, 4) else None


def _nerf_intrinsics(params: dict, color_path: Path, json_path: Path) -> Intrinsics | None:
    """K from fl_x/fl_y/cx/cy or camera_angle_x, in pixels of w x h (else of the image itself)."""
    if "fl_x" not in params and "camera_angle_x" not in params:
        raise InputError(json_path, "no focal length: give fl_x or camera_angle_x")
    try:
        if "w" in params and "h" in params:
            width, height = int(params["w"]), int(params["h"])
        else:
            size = _image_size(color_path)
            if size is None:
                return None   # the frame is skipped for its image anyway
            width, height = size
        fx = float(params["fl_x"]) if "fl_x" in params else 0.5 * width / math.tan(0.5 * float(params["camera_angle_x"]))
        if "fl_y" in params:
            fy = float(params["fl_y"])
        elif "camera_angle_y" in params:
            fy = 0.5 * height / math.tan(0.5 * float(params["camera_angle_y"]))
        else:
            fy = fx
        # NeRF tools put pixel centres at +0.5 (cx = w/2 is the image centre); ours are at integers.
        cx = float(params.get("cx", width / 2)) - 0.5
        cy = float(params.get("cy", height / 2)) - 0.5
    except (TypeError, ValueError) as exc:
        raise InputError(json_path, f"bad camera intrinsics: {exc}") from None
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return Intrinsics(K=K, size=(width, height))


# --------------------------------------------------------------------------- small file readers


def read_intrinsics_file(path: Path, size: tuple[int, int] | None = None) -> tuple[Intrinsics, Intrinsics | None]:
    """(colour, depth) intrinsics from a 3x3 or 4x4 matrix file, or a BundleFusion `info.txt`.

    A matrix file has no depth intrinsics (None: depth shares the colour camera's field of view).
    """
    if not path.is_file():
        raise InputError(path, "no such intrinsics file")
    text = path.read_text(errors="replace")
    if "m_calibrationColorIntrinsic" in text:
        return _read_bundlefusion_info(path)
    try:
        numbers = np.array(text.split(), dtype=np.float64)
    except ValueError:
        raise InputError(path, "expected a 3x3 or 4x4 intrinsics matrix of numbers") from None
    if numbers.size not in (9, 16):
        raise InputError(path, f"expected a 3x3 or 4x4 intrinsics matrix, found {numbers.size} numbers")
    side = int(round(math.sqrt(numbers.size)))
    return Intrinsics(K=_checked_K(numbers.reshape(side, side)[:3, :3], path), size=size), None


def _read_bundlefusion_info(path: Path) -> tuple[Intrinsics, Intrinsics | None]:
    values = _read_key_values(path)

    def intrinsics(kind: str) -> Intrinsics | None:
        key = f"m_calibration{kind}Intrinsic"
        if key not in values:
            return None
        try:
            matrix = np.array(values[key].split(), dtype=np.float64).reshape(4, 4)
            size = (int(values[f"m_{kind.lower()}Width"]), int(values[f"m_{kind.lower()}Height"]))
        except (KeyError, ValueError):
            raise InputError(path, f"cannot read {key} (16 numbers) with m_{kind.lower()}Width/Height") from None
        return Intrinsics(K=_checked_K(matrix[:3, :3], path), size=size)

    color, depth = intrinsics("Color"), intrinsics("Depth")
    if color is None:
        raise InputError(path, "no m_calibrationColorIntrinsic")
    same_grid = depth is not None and depth.size == color.size and np.allclose(depth.K, color.K)
    return color, None if same_grid else depth


def _checked_K(K: np.ndarray, path: Path) -> np.ndarray:
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(path, "intrinsics need finite, positive focal lengths")
    return K


def _read_key_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _read_pose(path: Path) -> np.ndarray | None:
    try:
        numbers = np.array(path.read_text().split(), dtype=np.float64)   # parses -inf and nan
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return numbers.reshape(4, 4) if numbers.size == 16 else None


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    files = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() in suffixes:
                files.setdefault(stem, Path(entry.path))
    return dict(sorted(files.items(), key=lambda item: _natural_key(item[0])))


def _natural_key(name: str) -> tuple:
    """'frame-10' after 'frame-9': digit runs compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def _sorted(frames: list[ScanFrame]) -> list[ScanFrame]:
    return sorted(frames, key=lambda frame: _natural_key(frame.name))


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image's header only; None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):  # PIL's ways of saying "corrupt"
        return None


def _size_from_principal_point(K: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """The image size K was made for when the folder does not say: the image's own, unless the
    principal point is far from its centre (intrinsics of the full-size sensor, resized images)."""
    native = (2.0 * (K[0, 2] + 0.5), 2.0 * (K[1, 2] + 0.5))
    if abs(native[0] - width) > 0.25 * width or abs(native[1] - height) > 0.25 * height:
        return int(round(native[0])), int(round(native[1]))
    return width, height


# --------------------------------------------------------------------------- choices and checks


def choose_mesh(folder: Path, mesh: str | None, preferred: str | None = None) -> Path:
    """The scan's mesh: `mesh` (inside the folder, or any path), the layout's preferred file, or the
    only mesh file in the folder."""
    if mesh:
        for path in (folder / mesh, Path(mesh)):
            if path.is_file():
                return path
        raise InputError(mesh, f"no such mesh file (in {folder} or as given)")
    candidates = sorted(path for path in folder.iterdir()
                        if path.is_file() and path.suffix.lower() in MESH_SUFFIXES)
    if preferred:
        matches = [path for path in candidates if path.match(preferred)]
        if len(matches) == 1:
            return matches[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InputError(folder, f"no mesh found ({' '.join(MESH_SUFFIXES)}); pass --mesh FILE")
    names = ", ".join(path.name for path in candidates)
    raise InputError(folder, f"several meshes ({names}); pick one with --mesh")


def frame_subset(count: int, spec: str | None) -> list[int]:
    """Indices into the sorted frame list: all, "start:stop:step" (Python slice) or "i,j,k"."""
    if spec is None or not str(spec).strip():
        return list(range(count))
    spec = str(spec).strip()
    try:
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) > 3:
                raise ValueError("too many ':'")
            bounds = [int(part) if part.strip() else None for part in parts]
            indices = list(range(count))[slice(*bounds)]
        else:
            indices = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError as exc:
        raise InputError("scene.frames", f"expected start:stop:step or i,j,k, got '{spec}' ({exc})") from None
    outside = [index for index in indices if not -count <= index < count]
    if outside:
        raise InputError("scene.frames", f"frame index {outside[0]} is outside the {count} frames of the scan")
    if not indices:
        raise InputError("scene.frames", f"'{spec}' selects none of the {count} frames")
    return [index % count for index in indices]


def rigid_pose(pose: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """The pose with its rotation snapped to the nearest exact rotation, or None and why not."""
    if pose is None:
        return None, "unreadable"
    if not np.all(np.isfinite(pose)):
        return None, "non-finite"
    rotation = pose[:3, :3]
    if (np.abs(rotation.T @ rotation - np.eye(3)).max() > RIGID_TOLERANCE
            or abs(np.linalg.det(rotation) - 1.0) > RIGID_TOLERANCE
            or np.abs(pose[3] - [0.0, 0.0, 0.0, 1.0]).max() > 1e-6):
        return None, "not rigid"
    u, _, vt = np.linalg.svd(rotation)
    snapped = pose.copy()
    snapped[:3, :3] = u @ vt
    return snapped, ""


def usable_photos(frames: list[ScanFrame], depth_intrinsics: Intrinsics | None, folder: Path) -> list[Photo]:
    """Photos of the frames that pass the checks; one warning per kind of check that skipped some."""
    bad_poses: Counter[str] = Counter()
    posed = []
    for frame in frames:
        pose, problem = rigid_pose(frame.pose)
        if pose is None:
            bad_poses[problem] += 1
        else:
            posed.append((frame, pose))
    if bad_poses:
        warn(f"{folder}: skipped {sum(bad_poses.values())} of {len(frames)} frames with invalid poses "
             f"({_counts(bad_poses)})")

    bad_images: Counter[str] = Counter()
    sized = []
    for frame, pose in progress(posed, desc="checking frames", unit="frame"):
        if not frame.color_path.is_file():
            bad_images["missing image"] += 1
            continue
        size = _image_size(frame.color_path)
        if size is None or frame.intrinsics is None:
            bad_images["unreadable image"] += 1
            continue
        sized.append((frame, pose, size))
    # The scan's image size is its frames' most common one; a frame of another size is a stray.
    common_size = Counter(size for _, _, size in sized).most_common(1)[0][0] if sized else None
    strays = sum(size != common_size for _, _, size in sized)
    if strays:
        bad_images[f"not {common_size[0]}x{common_size[1]}"] = strays
    if bad_images:
        warn(f"{folder}: skipped {sum(bad_images.values())} of {len(posed)} frames for their images "
             f"({_counts(bad_images)})")

    depth_size = _first_depth_size([frame for frame, _, size in sized if size == common_size])
    photos = []
    for frame, pose, size in sized:
        if size != common_size:
            continue
        width, height = size
        camera = Camera(K=frame.intrinsics.for_image(width, height), cam_to_world=pose, width=width, height=height)
        depth_camera = None
        if depth_intrinsics is not None and depth_size is not None:
            depth_camera = Camera(K=depth_intrinsics.for_image(*depth_size), cam_to_world=pose,
                                  width=depth_size[0], height=depth_size[1])
        photos.append(Photo(camera=camera, color_path=frame.color_path, name=frame.name,
                            depth_path=frame.depth_path if depth_size is not None else None,
                            depth_camera=depth_camera))
    if not photos:
        problems = _counts(bad_poses + bad_images) or "none listed"
        raise InputError(folder, f"no usable frames among {len(frames)} ({problems})")
    return photos


def _first_depth_size(frames: list[ScanFrame]) -> tuple[int, int] | None:
    for frame in frames:
        if frame.depth_path is not None:
            size = _image_size(frame.depth_path)
            if size is not None:
                return size
    return None


def _counts(counter: Counter) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in counter.items())


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
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
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


def _kind_from_cameras(cameras: list[Camera], bounds: np.ndarray) -> str:
    """"room" when most cameras stand inside the mesh's bounding box (a walkthrough capture),
    "object" when they surround it."""
    centres = np.array([camera.center for camera in cameras])
    inside = np.all((centres >= bounds[0]) & (centres <= bounds[1]), axis=1)
    return "room" if inside.mean() > 0.5 else "object"


# --------------------------------------------------------------------------- frame selection


def select_frames(photos: list[Photo], rasterizer, n: int, rng: np.random.Generator,
                  blur_filter: bool = True, *, raster_height: int = 64, blur_ratio: float = 0.3,
                  max_candidates: int = 2000) -> tuple[list[Photo], dict]:
    """At most `n` sharp photos that together see as much of the mesh's surface as possible.

    1. Blur filter: frames whose sharpness (variance of the Laplacian of a ~240-px grey thumbnail)
       is below `blur_ratio` x the median are dropped; so are frames whose pixels cannot be decoded.
    2. Coverage: each candidate is rasterized `raster_height` pixels high. Faces are grouped into
       surface patches (voxel cells of face centroids, about 2x2 pixels of such a view), because at
       that size a view hits only a sample of the faces of a dense scan; a view sees the patches its
       pixels hit. Greedily pick the view adding the most unseen patch area, until `n` views or
       nothing new.

    The chosen photos come most informative first, so any prefix is itself a good selection.
    Report keys: candidates, dropped_blurry, dropped_unreadable, dropped_empty (seeing no mesh),
    chosen, coverage (share of the mesh's area seen by the chosen views), coverage_all (by all
    candidates: the most any choice could reach), coverage_curve (after each pick), patch_size_m,
    seconds. `rng` draws the candidates when there are more than `max_candidates`.
    """
    start = time.perf_counter()
    candidates = list(photos)
    if len(candidates) > max_candidates:
        keep = np.sort(rng.choice(len(candidates), size=max_candidates, replace=False))
        candidates = [candidates[i] for i in keep]
    report: dict = {"candidates": len(candidates), "dropped_blurry": 0, "dropped_unreadable": 0,
                    "dropped_empty": 0}

    sharpness = [image_sharpness(photo.color_path) for photo in progress(candidates, desc="blur check", unit="frame")]
    readable = [(photo, value) for photo, value in zip(candidates, sharpness) if value is not None]
    report["dropped_unreadable"] = len(candidates) - len(readable)
    if blur_filter and readable:
        threshold = blur_ratio * float(np.median([value for _, value in readable]))
        sharp = [photo for photo, value in readable if value >= threshold]
        report["dropped_blurry"] = len(readable) - len(sharp)
    else:
        sharp = [photo for photo, _ in readable]

    seen_faces, pixel_sizes, seeing = _visible_faces(sharp, rasterizer, raster_height)
    report["dropped_empty"] = len(sharp) - len(seeing)
    face_area = _face_areas(rasterizer.vertices, rasterizer.faces)
    total_area = float(face_area.sum())
    chosen: list[Photo] = []
    curve: list[float] = []
    patch_size = 0.0
    if seeing:
        # Patches of about 2x2 pixels at the views' typical distance: small enough to tell views
        # apart, big enough that a patch a view looks at is hit by at least one of its pixels.
        patch_size = 2.0 * float(np.median(pixel_sizes))
        patch_of_face, patch_area = surface_patches(rasterizer.vertices, rasterizer.faces, face_area, patch_size)
        views = _view_patch_matrix([patch_of_face[faces] for faces in seen_faces], len(patch_area))
        order, areas = greedy_cover(views, patch_area, n)
        chosen = [seeing[i] for i in order]
        curve = [area / total_area for area in areas]
        all_seen = np.unique(views.indices)
        report["coverage_all"] = float(patch_area[all_seen].sum() / total_area)
    else:
        report["coverage_all"] = 0.0
    report.update(chosen=len(chosen), coverage=curve[-1] if curve else 0.0, coverage_curve=curve,
                  patch_size_m=patch_size, seconds=time.perf_counter() - start)
    return chosen, report


def image_sharpness(path: Path, height: int = 240) -> float | None:
    """Variance of the Laplacian of a grey thumbnail about `height` pixels high; None if unreadable.

    JPEGs are decoded straight at 1/2, 1/4 or 1/8 scale (`draft`), so thousands of frames take
    seconds. Every frame of a scan is reduced to the same height, so values compare across frames.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            height = min(height, image.height)   # upsampling would only blur every frame alike
            width = max(1, round(image.width * height / image.height))
            image.draft("L", (width, height))
            grey = image.convert("L")
            if grey.size != (width, height):
                grey = grey.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(grey, dtype=np.float32)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):  # PIL's ways of saying "corrupt"
        return None
    laplacian = (pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1]
                 - 4.0 * pixels[1:-1, 1:-1])
    return float(laplacian.var())


def _visible_faces(photos: list[Photo], rasterizer, raster_height: int,
                   batch: int = 32) -> tuple[list[np.ndarray], list[float], list[Photo]]:
    """Per photo seeing the mesh: its visible face ids, and its median pixel size in metres."""
    seen_faces, pixel_sizes, seeing = [], [], []
    bar = progress(desc="frame coverage", total=len(photos), unit="frame")
    for first in range(0, len(photos), batch):
        group = photos[first:first + batch]
        cameras = [photo.camera.scaled(raster_height) for photo in group]
        for photo, camera, fragments in zip(group, cameras, rasterizer.render_many(cameras)):
            mask = fragments.mask.numpy()
            if mask.any():
                seen_faces.append(np.unique(fragments.face_id.numpy()[mask]))
                # A pixel at z-depth d spans d / f metres on a surface facing the camera.
                pixel_sizes.append(float(np.median(fragments.depth.numpy()[mask])) / camera.K[1, 1])
                seeing.append(photo)
        bar.update(len(group))
    bar.close()
    return seen_faces, pixel_sizes, seeing


def _face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)


def surface_patches(vertices: np.ndarray, faces: np.ndarray, face_area: np.ndarray,
                    size: float) -> tuple[np.ndarray, np.ndarray]:
    """(patch id per face, area per patch): faces grouped by the `size`-metre voxel of their centroid."""
    centroids = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)].mean(axis=1)
    cells = np.floor((centroids - centroids.min(axis=0)) / max(size, 1e-9)).astype(np.int64)
    extent = cells.max(axis=0) + 1
    cell_key = (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]
    _, patch_of_face = np.unique(cell_key, return_inverse=True)
    return patch_of_face, np.bincount(patch_of_face, weights=face_area)


def _view_patch_matrix(view_patches: list[np.ndarray], patch_count: int):
    """Sparse (views x patches) 0/1 matrix: which patches each view sees."""
    from scipy.sparse import csr_matrix

    columns = [np.unique(patches) for patches in view_patches]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in columns])])
    indices = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
    return csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(columns), patch_count))


def greedy_cover(views, patch_area: np.ndarray, n: int) -> tuple[list[int], list[float]]:
    """Greedy maximum coverage: view indices in pick order and the area covered after each pick."""
    unseen = patch_area.astype(np.float64).copy()
    order: list[int] = []
    covered: list[float] = []
    total = 0.0
    for _ in range(min(n, views.shape[0])):
        gains = views @ unseen
        best = int(np.argmax(gains))
        if gains[best] <= 0.0:
            break   # every remaining view only sees what is already covered
        order.append(best)
        total += float(gains[best])
        covered.append(total)
        unseen[views.indices[views.indptr[best]:views.indptr[best + 1]]] = 0.0
    return order, covered


# --------------------------------------------------------------------------- photos as content


def photo_pixels(photo: Photo, height: int, width: int) -> torch.Tensor:
    """(3,H,W) the photo's colours resized (antialiased) to a view of `height` x `width` pixels."""
    from meshstyle.common.io import read_image

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


# --------------------------------------------------------------------------- texture size


def default_texture_size(scene: Scene, texels_per_metre: float, max_size: int = 4096) -> int:
    """Side of a square atlas giving the scene's surface `texels_per_metre` after packing: the
    smallest power of two that does, at most `max_size` (rounded down to a power of two)."""
    area = float(_face_areas(scene.vertices, scene.faces).sum())
    needed = math.sqrt(area * texels_per_metre ** 2 / ATLAS_FILL)
    size = 2 ** max(6, math.ceil(math.log2(max(needed, 1.0))))
    return min(size, 2 ** int(math.log2(max(max_size, 64))))
