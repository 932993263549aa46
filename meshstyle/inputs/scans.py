"""Real scans: scan folders as scenes with photos (folder layouts, intrinsics, pose checks).

A scan folder holds a mesh, colour photos, camera poses and intrinsics (docs/DESIGN.md "Scene inputs").
Three layouts are read, detected from what the folder contains:

- NeRF: `transforms.json` (or `transforms_train.json`); OpenGL camera axes, converted to OpenCV.
- ScanNet export: `color/<i>.jpg`, `pose/<i>.txt`, `intrinsic/intrinsic_color.txt`, `depth/<i>.png`.
- 7-Scenes / BundleFusion: `frame-XXXXXX.{color.jpg|color.png,pose.txt,depth.png}`, in the folder or
  in subfolders (`frames/`, `seq-01/`, ...), intrinsics from `camera-intrinsics.txt` or `info.txt`.

Scans have thousands of frames, so `load_scan` keeps photos on disk (paths only) and checks each
frame cheaply: its pose file, and its image's *header* (size), never its pixels. Frames that fail a
check are skipped and counted in one warning per kind of check. Choosing among the frames
(`views.frame_selection`) and photos as content targets (`stylize.photo_targets`) live with the
stages that use them; the scene's up axis from the poses is in `inputs.up_axis`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meshstyle.common.progress import log, progress, warn
from meshstyle.config import SceneConfig
from meshstyle.errors import InputError
from meshstyle.geometry.camera import Camera, rescale_intrinsics
from meshstyle.geometry.scene import Photo, Scene
from meshstyle.inputs import nerf
from meshstyle.inputs.meshes import MESH_SUFFIXES, load_mesh_file
from meshstyle.inputs.regions import scannet_labels
from meshstyle.inputs.up_axis import kind_from_cameras, level_with_floor, up_from_cameras

# A stored rotation counts as rigid when R^T R is within this of I and det(R) within this of 1;
# loose enough for poses written with 6-8 digits, tight enough to reject scaled or sheared ones.
RIGID_TOLERANCE = 1e-2


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
        return rescale_intrinsics(self.K, sx, sy)


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

    mesh_scene = load_mesh_file(mesh_path)
    up = listing.up or level_with_floor(up_from_cameras([photo.camera for photo in photos]),
                                        mesh_scene.vertices, mesh_scene.faces)
    kind = listing.kind or kind_from_cameras([photo.camera for photo in photos], mesh_scene.bounds)
    subset = f" selected of {len(listing.frames)}" if len(frames) < len(listing.frames) else ""
    log(f"{folder}: {listing.layout} scan, {len(photos)} usable of {len(frames)}{subset} frames, "
        f"mesh {mesh_path.name}")
    scene = dataclasses.replace(mesh_scene, name=folder.resolve().name, photos=photos, kind=kind,
                                up=up, source=str(folder))
    if listing.layout == "scannet":
        # ScanNet's semantic annotation sits beside the mesh: its NYU40 classes become regions.
        scene.labels = scannet_labels(mesh_path, scene) or scene.labels
    return scene


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
    colors = _files_by_stem(folder / "color", nerf.IMAGE_SUFFIXES)
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


def _read_nerf(folder: Path, json_path: Path) -> ScanListing:
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(json_path, f"cannot read JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise InputError(json_path, "expected an object with a 'frames' list")
    frames = []
    for index, entry in enumerate(meta["frames"]):
        if not isinstance(entry, dict) or "file_path" not in entry:
            raise InputError(json_path, f"frame {index} has no file_path")
        color_path = nerf.image_path(json_path.parent, str(entry["file_path"]))
        fields = nerf.camera_fields(meta, entry)
        size = nerf.stated_size(fields, json_path) or _image_size(color_path)
        # A frame whose image cannot be read is skipped for its image anyway.
        intrinsics = None if size is None else Intrinsics(K=nerf.intrinsics(fields, size, json_path), size=size)
        frames.append(ScanFrame(name=str(entry["file_path"]), color_path=color_path,
                                pose=nerf.pose(entry.get("transform_matrix")), intrinsics=intrinsics))
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
