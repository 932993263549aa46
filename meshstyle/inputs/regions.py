"""Regions: which faces a `--region NAME=STYLE` addresses, and the label files that name them.

Three sources, first match wins: `--regions FILE` (a per-face label file, `.npy` or a PLY with a
face `label` property, or ScanNet's vertex-labelled `*_vh_clean_2.labels.ply`); else the labels the
scene brought along (a ScanNet scan's `*_vh_clean_2.labels.ply`, the input's material names,
the built-in demo room's parts). Faces that no `--region` names form one more region, "rest",
painted with the main `--style`.

Everything here is cheap and runs before the atlas, so a bad name or file fails in a second.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meshstyle.errors import InputError
from meshstyle.geometry.scene import FaceLabels, Scene

KEEP = "keep"          # `--region NAME=keep`: the region's texels stay exactly as they were
REST = "rest"          # the region of the faces no --region names (main style)

# NYU40 class ids (1..40) as ScanNet's *_vh_clean_2.labels.ply stores them in its vertex `label`
# property; 0 is "not annotated".
NYU40_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)


def nyu40_name(label: int) -> str:
    """The NYU40 class name of a label id (1..40); other ids are named by their number."""
    return NYU40_NAMES[label - 1] if 1 <= label <= len(NYU40_NAMES) else str(int(label))


@dataclass(frozen=True)
class RegionStyle:
    """One `--region NAME=STYLE`: STYLE is an image path or built-in style name, or None (keep)."""
    name: str
    style: str | None

    @classmethod
    def parse(cls, text: str) -> "RegionStyle":
        name, sep, style = str(text).partition("=")
        if not sep or not name.strip() or not style.strip():
            raise InputError("--region", f"expected NAME=STYLE or NAME=keep, got '{text}'")
        style = style.strip()
        return cls(name.strip(), None if style.lower() == KEEP else style)


@dataclass(frozen=True)
class Region:
    """One region of a run: its faces share one style target and one palette step."""
    name: str
    style: str | None      # image path / built-in name; None = keep; "" = the main --style
    faces: int
    source: str            # where its name came from ("materials", "scannet labels FILE", ...)

    @property
    def keep(self) -> bool:
        return self.style is None

    def record(self, main_style: str) -> dict:
        """run.json's entry for the region."""
        style = KEEP if self.keep else (self.style or main_style)
        return {"name": self.name, "source": self.source, "faces": self.faces, "style": style}


@dataclass
class RegionPlan:
    """The resolved regions of a run: `face_region[f]` indexes `regions`."""
    regions: list[Region]
    face_region: np.ndarray         # (F,) int32

    @property
    def keep(self) -> frozenset[int]:
        return frozenset(i for i, region in enumerate(self.regions) if region.keep)

    @property
    def painted(self) -> list[int]:
        return [i for i, region in enumerate(self.regions) if not region.keep]


def resolve_regions(scene: Scene, styles: tuple[str, ...], labels_file: str | None) -> RegionPlan | None:
    """The run's regions, or None without any `--region` (then no region machinery runs at all).

    Exit-2 errors: a bad labels file (naming it and the problem), a --region name that exists
    nowhere (listing the names there are), a name given twice."""
    labels = read_labels_file(Path(labels_file), scene) if labels_file else scene.labels
    if not styles:
        return None
    wanted = [RegionStyle.parse(text) for text in styles]
    if labels is None or not labels.names:
        raise InputError("--region", f"{scene.source or scene.name} has no regions (no materials or "
                                     "ScanNet labels); give a per-face label file with --regions FILE")
    by_key = {_key(name): index for index, name in enumerate(labels.names)}
    seen: set[str] = set()
    for one in wanted:
        if _key(one.name) in seen:
            raise InputError("--region", f"region '{one.name}' is given twice")
        seen.add(_key(one.name))
        if _key(one.name) not in by_key:
            counts = labels.face_counts()
            available = ", ".join(name for name in labels.names if counts.get(name, 0) > 0)
            raise InputError("--region", f"no region named '{one.name}' in {labels.source}; "
                                         f"available: {available}")
    # Region 0 is the rest (main style); each --region gets the next index.
    face_region = np.zeros(len(scene.faces), dtype=np.int32)
    regions: list[Region] = []
    for index, one in enumerate(wanted, start=1):
        chosen = labels.face == by_key[_key(one.name)]
        face_region[chosen] = index
        regions.append(Region(labels.names[by_key[_key(one.name)]], one.style, int(chosen.sum()), labels.source))
    rest = int((face_region == 0).sum())
    plan = [Region(REST, "", rest, "faces no --region names")] + regions
    if rest == 0:
        # Every face is named: no empty rest region (it would get a pyramid and style targets).
        face_region -= 1
        plan = regions
    return RegionPlan(plan, face_region)


def _key(name: str) -> str:
    """Names match ignoring case and space/underscore/hyphen ('floor_mat' = 'floor mat')."""
    return "".join(ch for ch in name.lower() if ch not in " _-")


# --- label files ------------------------------------------------------------------------------

def read_labels_file(path: Path, scene: Scene) -> FaceLabels:
    """Per-face labels of `scene` from a `.npy` (an integer or string per face) or a PLY (a face
    `label` property, or ScanNet's vertex `label`, NYU40 ids, each face taking its vertices'
    majority). Faces count the input file's way (before degenerate faces were dropped)."""
    if not path.is_file():
        raise InputError(path, "no such labels file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        values = _read_npy(path)
        return _select(path, scene, *_names_of(values), f"labels {path.name}")
    if suffix == ".ply":
        ply = read_ply(path)
        face = ply.get("face", {})
        if "label" in face:
            return _select(path, scene, *_names_of(face["label"].astype(np.int64)), f"labels {path.name}")
        if "label" in ply.get("vertex", {}) and _corners(face) is not None:
            return _scannet_select(path, scene, ply)
        raise InputError(path, "has no face 'label' property (nor a vertex 'label' with faces)")
    raise InputError(path, f"unknown labels file type '{suffix or path.name}' (expected .npy or .ply)")


def scannet_labels(mesh_path: Path, scene: Scene) -> FaceLabels | None:
    """The NYU40 labels beside a ScanNet mesh (`X_vh_clean_2.ply` -> `X_vh_clean_2.labels.ply`), if any."""
    path = mesh_path.with_name(mesh_path.stem + ".labels.ply")
    if not path.is_file():
        return None
    ply = read_ply(path)
    if "label" not in ply.get("vertex", {}) or _corners(ply.get("face", {})) is None:
        raise InputError(path, "has no vertex 'label' property or no faces")
    return _scannet_select(path, scene, ply)


def _corners(face: dict[str, np.ndarray]) -> np.ndarray | None:
    return face.get("vertex_indices", face.get("vertex_index"))


def _scannet_select(path: Path, scene: Scene, ply: dict[str, dict[str, np.ndarray]]) -> FaceLabels:
    try:
        names, face = scannet_face_labels(ply["vertex"]["label"], _corners(ply["face"]).astype(np.int64))
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
    return _select(path, scene, names, face, f"scannet labels {path.name}")


def scannet_face_labels(vertex_label: np.ndarray, faces: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, (F,) index) from NYU40 vertex labels: a face takes the label at least two of its
    corners share, else its first corner's; 0 (not annotated) leaves the face unlabelled."""
    labels = np.asarray(vertex_label, dtype=np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(labels)):
        raise ValueError("faces name vertices the file does not have")
    corner = labels[faces]
    a, b, c = corner[:, 0], corner[:, 1], corner[:, 2]
    majority = np.where((a == b) | (a == c), a, np.where(b == c, b, a))
    ids = np.unique(majority[majority > 0])
    names = tuple(nyu40_name(int(i)) for i in ids)
    face = np.full(len(majority), -1, dtype=np.int32)
    labelled = majority > 0
    face[labelled] = np.searchsorted(ids, majority[labelled])
    return names, face


def _names_of(values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, (F,) index) of per-face labels: integers are named by their number (negative =
    unlabelled), strings by themselves ("" = unlabelled)."""
    if values.dtype.kind in "iu":
        valid = values >= 0
        ids, inverse = np.unique(values[valid], return_inverse=True)
        face = np.full(len(values), -1, dtype=np.int32)
        face[valid] = inverse
        return tuple(str(int(i)) for i in ids), face
    text = values.astype(str)
    valid = text != ""
    names, inverse = np.unique(text[valid], return_inverse=True)
    face = np.full(len(values), -1, dtype=np.int32)
    face[valid] = inverse
    return tuple(str(n) for n in names), face


def _read_npy(path: Path) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"cannot read as .npy ({str(exc).splitlines()[0][:80] or type(exc).__name__})") from None
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iuUS" and not (values.dtype.kind == "f" and
                                                                   np.all(np.mod(values, 1) == 0)):
        raise InputError(path, f"expected one integer or string per face, got an array of shape "
                               f"{values.shape} and type {values.dtype}")
    return values.astype(np.int64) if values.dtype.kind == "f" else values


def _select(path: Path, scene: Scene, names: tuple[str, ...], face: np.ndarray, source: str) -> FaceLabels:
    """Per-face labels counted the input's way, mapped onto the scene's (cleaned) faces."""
    read = scene.input_face_count or len(scene.faces)
    if len(face) == read:
        chosen = face if scene.input_faces is None else face[scene.input_faces]
    elif len(face) == len(scene.faces):
        chosen = face
    else:
        raise InputError(path, f"has {len(face)} face labels, but the mesh has {read} faces")
    return FaceLabels(names=names, face=np.ascontiguousarray(chosen, dtype=np.int32), source=source)


# --- a small PLY reader: open3d and trimesh drop the `label` properties ---------------------------

PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
             "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
             "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def read_ply(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{element: {property: array}} of a triangle PLY (ascii or binary); list properties of
    triangles come back (N,3). Exit-2 error naming the file for anything else."""
    try:
        return _read_ply(path)
    except InputError:
        raise
    except (ValueError, KeyError, IndexError, OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read PLY ({str(exc)[:100] or type(exc).__name__})") from None


def _read_ply(path: Path) -> dict[str, dict[str, np.ndarray]]:
    with open(path, "rb") as handle:
        if handle.readline().strip() != b"ply":
            raise InputError(path, "is not a PLY file")
        fmt, elements = "", []
        while True:
            line = handle.readline()
            if not line:
                raise InputError(path, "PLY header has no end_header (truncated?)")
            words = line.decode("ascii").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property":
                prop = (words[4], PLY_TYPES[words[2]], PLY_TYPES[words[3]]) if words[1] == "list" \
                    else (words[2], None, PLY_TYPES[words[1]])
                elements[-1][2].append(prop)
        body = handle.read()
    if fmt == "ascii":
        return _ply_ascii(body, elements)
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise InputError(path, f"unknown PLY format '{fmt}'")
    order = "<" if fmt == "binary_little_endian" else ">"
    result, offset = {}, 0
    for name, count, props in elements:
        # Lists are read as triangles (count byte + 3 indices) and the counts checked afterwards.
        fields = []
        for prop, count_type, value_type in props:
            if count_type is not None:
                fields += [(prop + "#count", order + count_type), (prop, order + value_type, (3,))]
            else:
                fields.append((prop, order + value_type))
        dtype = np.dtype(fields)
        if offset + dtype.itemsize * count > len(body):
            raise InputError(path, f"ends inside its '{name}' element (truncated?)")
        data = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
        offset += dtype.itemsize * count
        values = {}
        for prop, count_type, _ in props:
            if count_type is not None and count and not np.all(data[prop + "#count"] == 3):
                raise InputError(path, f"element '{name}' has lists other than triangles")
            values[prop] = np.array(data[prop])
        result[name] = values
    return result


def _ply_ascii(body: bytes, elements: list) -> dict[str, dict[str, np.ndarray]]:
    lines = iter(body.decode("ascii").splitlines())
    result = {}
    for name, count, props in elements:
        rows = [next(lines).split() for _ in range(count)]
        values: dict[str, list] = {prop: [] for prop, _, _ in props}
        for row in rows:
            at = 0
            for prop, count_type, value_type in props:
                if count_type is not None:
                    n = int(row[at])
                    if n != 3:
                        raise ValueError(f"element '{name}' has lists other than triangles")
                    values[prop].append([float(v) for v in row[at + 1:at + 4]])
                    at += 1 + n
                else:
                    values[prop].append(float(row[at]))
                    at += 1
        result[name] = {prop: np.asarray(values[prop], dtype=value_type).reshape(count, *(3,) if ct else ())
                        for prop, ct, value_type in props}
    return result
