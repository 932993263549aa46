"""Scenes from mesh files (.ply .obj .glb .gltf .off .stl).

Mesh files go through trimesh: on the 200k-triangle binary PLY of redkitchen it took 0.04-0.12 s and
open3d 0.07 s (scripts/bench_atlas.py), not worth a second reader. A glTF scene graph is flattened with its node transforms; every
part keeps its own colours, UVs and base-colour texture, so a file with several materials becomes one
Scene whose `Appearance` indexes several source textures.
"""
from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from meshstyle.errors import InputError
from meshstyle.common.progress import warn
from meshstyle.geometry.frames import GLTF_UP
from meshstyle.geometry.scene import Appearance, FaceLabels, Scene
from meshstyle.geometry.mesh import corner_cross

MESH_SUFFIXES = (".ply", ".obj", ".glb", ".gltf", ".off", ".stl")
GLTF_SUFFIXES = (".glb", ".gltf")
Y_UP_SUFFIXES = (".glb", ".gltf", ".obj")
NEUTRAL_GREY = 0.5


def file_up(path: str | Path) -> tuple[float, float, float]:
    """The up axis a mesh file's format implies (geometry/frames.py): glTF and OBJ +Y, PLY/STL/OFF +Z."""
    return GLTF_UP if Path(path).suffix.lower() in Y_UP_SUFFIXES else (0.0, 0.0, 1.0)


@dataclass
class _Part:
    """One mesh of a file (one glTF primitive / OBJ material group) in world coordinates."""
    vertices: np.ndarray                 # (V,3) float64
    faces: np.ndarray                    # (F,3) int64
    vertex_colors: np.ndarray | None     # (V,3) float32
    uv: np.ndarray | None                # (V,2) float64, OBJ convention
    texture: np.ndarray | None           # (H,W,3) float32
    material: str = ""                   # the material's name (OBJ usemtl / glTF material.name)


def load_mesh_file(path: str | Path) -> Scene:
    """A triangle mesh file (.ply .obj .glb .gltf .off .stl) with its colours, UVs and textures."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "is not a file")
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise InputError(path, f"unknown mesh format '{suffix or path.name}' (expected one of {', '.join(MESH_SUFFIXES)})")

    check_mesh_content(path)
    for texture_name in missing_texture_files(path):
        warn(f"{path}: texture '{texture_name}' not found; using the mesh's colours instead")
    parts = _read_parts(path)
    vertices, faces, appearance = _merge(parts)
    read_count = len(faces)
    vertices, faces, appearance, kept = _clean(path, vertices, faces, appearance)
    scene = Scene(name=path.stem, vertices=vertices, faces=faces, appearance=appearance, up=file_up(path),
                  source=str(path), up_source=f"{suffix} convention", labels=material_labels(parts, kept),
                  input_faces=None if kept.all() else np.flatnonzero(kept), input_face_count=read_count)
    scene.kind = guess_kind(vertices, faces)
    return scene


# Leading bytes of each mesh format, for telling a misnamed file by its content.
_MAGIC = ((b"ply\n", ".ply"), (b"ply\r\n", ".ply"), (b"glTF", ".glb"), (b"OFF", ".off"), (b"solid", ".stl"),
          (b"PK\x03\x04", "a zip archive"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"))


def check_mesh_content(path: Path) -> None:
    """Exit-2 errors for a file whose content is not what its name says (a PLY named .obj), an
    empty file, or a truncated OBJ; before trimesh, which reads all of these without complaint
    or with a message about the wrong thing."""
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    if not head.strip():
        raise InputError(path, "is empty")
    for magic, kind in _MAGIC:
        if not head.startswith(magic) or kind == suffix or kind == ".stl":
            continue  # ("solid" also starts plenty of text files: it only names ASCII STL by suffix)
        if kind.startswith("."):
            raise InputError(path, f"is a {kind[1:].upper()} file named {suffix}: its content is not "
                                   f"{suffix[1:].upper()} (rename it to {path.stem}{kind})")
        raise InputError(path, f"is {kind}, not a {suffix[1:].upper()} mesh")
    if suffix == ".obj":
        if b"\0" in head:
            raise InputError(path, "is binary, not a text OBJ file")
        check_obj_text(path)


def check_obj_text(path: Path) -> None:
    """A truncated or damaged OBJ: records cut short (a face with fewer than 3 corners, a vertex
    with fewer than 3 numbers), numbers that do not parse, or faces naming vertices that do not
    exist. trimesh drops such faces silently, and the result would be stylized without them."""
    vertices = uvs = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.split(b"#", 1)[0].strip()
            if not line:
                continue
            keyword, _, rest = line.partition(b" ")
            fields = rest.split()
            if keyword == b"v":
                if len(fields) < 3 or not _all_numbers(fields[:3]):
                    raise InputError(path, f"line {number}: vertex needs 3 numbers{_truncation_hint(handle, raw)}")
                vertices += 1
            elif keyword == b"vt":
                if not fields or not _all_numbers(fields[:2]):
                    raise InputError(path, f"line {number}: bad texture coordinate{_truncation_hint(handle, raw)}")
                uvs += 1
            elif keyword == b"f":
                if len(fields) < 3:
                    raise InputError(path, f"line {number}: face with {len(fields)} corners{_truncation_hint(handle, raw)}")
                for corner in fields:
                    parts = corner.split(b"/")
                    index = _obj_index(parts[0], vertices)
                    if index is None:
                        raise InputError(path, f"line {number}: face corner '{corner.decode(errors='replace')}' names "
                                               f"no existing vertex (file has {vertices} so far){_truncation_hint(handle, raw)}")
                    if len(parts) > 1 and parts[1] and _obj_index(parts[1], uvs) is None:
                        raise InputError(path, f"line {number}: face corner '{corner.decode(errors='replace')}' names "
                                               f"no existing texture coordinate")


def _all_numbers(fields: list[bytes]) -> bool:
    try:
        [float(field) for field in fields]   # nan/inf parse: the mesh cleaner reports them by name
    except ValueError:
        return False
    return True


def _obj_index(text: bytes, count: int) -> int | None:
    """0-based index of a 1-based (or negative, relative) OBJ reference, None when out of range."""
    try:
        value = int(text)
    except ValueError:
        return None
    index = value - 1 if value > 0 else count + value
    return index if value != 0 and 0 <= index < count else None


def _truncation_hint(handle, raw: bytes) -> str:
    """' (file truncated?)' when the bad record is the file's last line without a line end."""
    at_end = not raw.endswith(b"\n") and not handle.read(1)
    return " (the file ends mid-record: truncated?)" if at_end else ""


def _read_parts(path: Path) -> list[_Part]:
    """The file's meshes in world coordinates (node transforms applied)."""
    import trimesh

    try:
        loaded = trimesh.load_scene(path, process=False)
        meshes = loaded.dump(concatenate=False)  # node transforms applied
    except Exception as exc:  # trimesh raises a zoo of types for corrupt and truncated files
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot read {path.suffix.lower()[1:].upper()} file: {detail}") from None
    parts = [_part_of(mesh) for mesh in meshes if isinstance(mesh, trimesh.Trimesh) and len(mesh.faces)]
    if not parts:
        has_points = any(len(getattr(mesh, "vertices", ())) for mesh in meshes)
        raise InputError(path, "has no triangles (a point cloud?)" if has_points else "has no triangles")
    return parts


def _part_of(mesh) -> _Part:
    from trimesh.visual import ColorVisuals, TextureVisuals
    from trimesh.visual.material import PBRMaterial

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    visual = mesh.visual
    colours, uv, texture = None, None, None
    if isinstance(visual, ColorVisuals) and visual.kind == "vertex":
        colours = _unit_rgb(visual.vertex_colors)
    elif isinstance(visual, ColorVisuals) and visual.kind == "face":
        colours = _face_to_vertex_colours(_unit_rgb(visual.face_colors), faces, len(vertices))
    elif isinstance(visual, TextureVisuals) and visual.material is not None:
        image, factor = _material_image_and_colour(visual.material)
        has_uv = visual.uv is not None and len(visual.uv) == len(vertices)
        if image is not None and has_uv:
            uv = np.asarray(visual.uv, dtype=np.float64)
            # glTF multiplies the texture by baseColorFactor; an MTL's Kd beside a map_Kd is mostly an
            # exporter default (Blender writes 0.8, trimesh 0.4) that would only darken the texture.
            texture = image * factor if isinstance(visual.material, PBRMaterial) else image
        else:
            colours = np.broadcast_to(factor, (len(vertices), 3)).astype(np.float32)
        vertex_colour = getattr(visual, "vertex_attributes", {}).get("color")
        if vertex_colour is not None and len(vertex_colour) == len(vertices):
            colours = _unit_rgb(vertex_colour)
    material = getattr(getattr(visual, "material", None), "name", None)
    return _Part(vertices=vertices, faces=faces, vertex_colors=colours, uv=uv, texture=texture,
                 material=str(material) if material else "")


def material_labels(parts: list[_Part], kept: np.ndarray) -> FaceLabels | None:
    """Each kept face's material name, when the file names at least one material: the regions
    `--region NAME=STYLE` can address in a multi-material OBJ/glTF. Parts without a name are
    unlabelled (-1)."""
    names = tuple(dict.fromkeys(part.material for part in parts if part.material))
    if not names:
        return None
    index = {name: i for i, name in enumerate(names)}
    face = np.concatenate([np.full(len(part.faces), index.get(part.material, -1), dtype=np.int32)
                           for part in parts])
    return FaceLabels(names=names, face=np.ascontiguousarray(face[kept]), source="materials")


def _unit_rgb(colours: np.ndarray) -> np.ndarray:
    colours = np.asarray(colours)
    scale = 255.0 if colours.dtype == np.uint8 or colours.max(initial=0) > 1.0 else 1.0
    return (colours[:, :3].astype(np.float32) / scale).clip(0.0, 1.0)


def _face_to_vertex_colours(face_colours: np.ndarray, faces: np.ndarray, vertex_count: int) -> np.ndarray:
    total = np.zeros((vertex_count, 3), dtype=np.float64)
    count = np.zeros(vertex_count)
    np.add.at(total, faces.ravel(), np.repeat(face_colours, 3, axis=0))
    np.add.at(count, faces.ravel(), 1.0)
    return (total / np.maximum(count, 1)[:, None]).astype(np.float32)


def _material_image_and_colour(material) -> tuple[np.ndarray | None, np.ndarray]:
    """A material's base-colour image (H,W,3 float32) and its colour factor (3,) in [0,1]."""
    from trimesh.visual.material import PBRMaterial

    if isinstance(material, PBRMaterial):
        image, factor = material.baseColorTexture, material.baseColorFactor
    else:
        image, factor = getattr(material, "image", None), getattr(material, "diffuse", None)
    factor = np.ones(3, np.float32) if factor is None else _unit_rgb(np.asarray(factor).reshape(1, -1))[0]
    if image is not None:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return pixels, factor
    return None, factor


def _merge(parts: list[_Part]) -> tuple[np.ndarray, np.ndarray, Appearance]:
    """One vertex/face list; textured parts index a list of source textures (face_texture)."""
    offsets = np.cumsum([0] + [len(part.vertices) for part in parts])
    vertices = np.concatenate([part.vertices for part in parts])
    faces = np.concatenate([part.faces + offset for part, offset in zip(parts, offsets)])
    appearance = Appearance()
    if any(part.vertex_colors is not None for part in parts):
        appearance.vertex_colors = np.concatenate([
            part.vertex_colors if part.vertex_colors is not None
            else np.full((len(part.vertices), 3), NEUTRAL_GREY, dtype=np.float32) for part in parts])
    if any(part.texture is not None for part in parts):
        uv_parts, face_texture = [], []
        seen: dict[tuple, int] = {}
        for part in parts:
            if part.texture is not None:
                # glTF nodes that share one material give each part its own copy of the same image:
                # one texture, not several (several would force re-baking into a new atlas).
                key = (part.texture.shape, hashlib.sha1(np.ascontiguousarray(part.texture).tobytes()).hexdigest())
                if key not in seen:
                    seen[key] = len(appearance.textures)
                    appearance.textures.append(part.texture)
                face_texture.append(np.full(len(part.faces), seen[key], dtype=np.int32))
                uv_parts.append(part.uv[part.faces])
            else:
                face_texture.append(np.full(len(part.faces), -1, dtype=np.int32))
                uv_parts.append(np.zeros((len(part.faces), 3, 2)))
        appearance.uv = np.concatenate(uv_parts).astype(np.float32)
        appearance.face_texture = np.concatenate(face_texture)
    return vertices, faces, appearance


def _clean(path: Path, vertices: np.ndarray, faces: np.ndarray,
           appearance: Appearance) -> tuple[np.ndarray, np.ndarray, Appearance, np.ndarray]:
    """Refuse broken geometry; quietly drop degenerate faces and unreferenced or duplicate vertices.
    Also returns which of the faces as read were kept (per-face labels follow it)."""
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(path, "has faces that refer to vertices it does not have")
    referenced = np.unique(faces)
    if not np.isfinite(vertices[referenced]).all():
        raise InputError(path, "has non-finite vertex coordinates (NaN or infinity)")
    corners = vertices[faces]
    doubled_area = np.linalg.norm(corner_cross(corners), axis=1)
    extent = float(np.ptp(vertices[referenced], axis=0).max())
    good = ((faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
            & (doubled_area > 1e-12 * extent * extent))
    if not good.any():
        raise InputError(path, f"has only degenerate triangles ({len(faces)} of zero area)")
    faces = faces[good]
    if appearance.uv is not None:
        appearance.uv = appearance.uv[good]
        appearance.face_texture = appearance.face_texture[good]

    # Weld vertices that agree in position and colour: files split them at UV and normal seams, which
    # would cut the surface into pieces for unwrapping. Per-corner UVs survive welding.
    keys = vertices if appearance.vertex_colors is None else np.hstack([vertices, appearance.vertex_colors])
    used = np.unique(faces)
    _, first, new_index = np.unique(keys[used], axis=0, return_index=True, return_inverse=True)
    remap = np.empty(len(vertices), dtype=np.int64)
    remap[used] = new_index.ravel()
    kept = used[first]
    faces = remap[faces]
    if appearance.vertex_colors is not None:
        appearance.vertex_colors = np.ascontiguousarray(appearance.vertex_colors[kept], dtype=np.float32)
    return np.ascontiguousarray(vertices[kept], dtype=np.float64), faces.astype(np.int64), appearance, good


def guess_kind(vertices: np.ndarray, faces: np.ndarray) -> str:
    """"room" when the mesh encloses its bounding-box centre and faces it, else "object".

    Two votes: the share of surface area whose normal points toward the centre, and among rays cast
    from the centre, the share of hits on surfaces facing it. An object's normals point away from its
    centre; a room, seen from inside, faces it.
    """
    import open3d as o3d

    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    corners = vertices[faces]
    normal = corner_cross(corners)   # length = 2 area
    toward_centre = np.einsum("fd,fd->f", normal, centre - corners.mean(axis=1)) > 0
    inward_share = float(np.linalg.norm(normal[toward_centre], axis=1).sum() / np.linalg.norm(normal, axis=1).sum())

    raycaster = o3d.t.geometry.RaycastingScene()
    raycaster.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    directions = _sphere_directions(256)
    rays = np.hstack([np.broadcast_to(centre, directions.shape), directions]).astype(np.float32)
    hit = raycaster.cast_rays(o3d.core.Tensor(rays))
    hit_normal = hit["primitive_normals"].numpy()
    reached = np.isfinite(hit["t_hit"].numpy())
    facing = reached & (np.einsum("rd,rd->r", hit_normal, directions) < 0)
    # Scans are open (redkitchen: 43% of rays from the centre reach a surface, 99% of those face it).
    enclosed = reached.mean() > 0.2 and facing.sum() > 0.5 * reached.sum()
    return "room" if inward_share > 0.5 and enclosed else "object"


def _sphere_directions(count: int) -> np.ndarray:
    """Evenly spread unit vectors (Fibonacci sphere): deterministic, no generator needed."""
    index = np.arange(count) + 0.5
    z = 1.0 - 2.0 * index / count
    angle = np.pi * (3.0 - np.sqrt(5.0)) * index
    radius = np.sqrt(1.0 - z * z)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=1)


def missing_texture_files(path: Path) -> list[str]:
    """Texture files that a mesh file's materials name but that do not exist beside it."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".obj":
            return _missing_obj_textures(path)
        if suffix in GLTF_SUFFIXES:
            return _missing_gltf_images(path)
    except (OSError, ValueError, UnicodeDecodeError, struct.error):
        return []  # unreadable files are reported by the mesh reader itself
    return []


def _missing_obj_textures(path: Path) -> list[str]:
    missing = []
    with open(path, "r", errors="replace") as handle:
        libraries = [line.split(None, 1)[1].strip() for line in handle
                     if line.startswith("mtllib") and len(line.split()) > 1]
    for library in libraries:
        library_path = path.parent / library
        if not library_path.is_file():
            missing.append(library)
            continue
        for line in library_path.read_text(errors="replace").splitlines():
            match = re.match(r"\s*map_Kd\s+(.+)", line)
            if match:
                # Options (-s 1 1 1, -clamp on, ...) come before the file name, which is last.
                name = match.group(1).split()[-1]
                if not (library_path.parent / name).is_file():
                    missing.append(name)
    return missing


def _missing_gltf_images(path: Path) -> list[str]:
    if path.suffix.lower() == ".glb":
        with open(path, "rb") as handle:
            header = handle.read(20)
            if len(header) < 20 or header[:4] != b"glTF":
                return []
            json_length = struct.unpack("<I", header[12:16])[0]
            document = json.loads(handle.read(json_length))
    else:
        document = json.loads(path.read_text())
    uris = [image.get("uri") for image in document.get("images", [])]
    return [uri for uri in uris
            if uri and not uri.startswith("data:") and not (path.parent / unquote(uri)).is_file()]
