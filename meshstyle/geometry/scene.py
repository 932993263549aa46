"""Scenes: a triangle mesh, its own appearance, and (for scans) photos with camera poses.

Contract shared by every stage (units metres, OBJ UV convention, colours float32 sRGB in [0,1]).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from meshstyle.geometry.camera import Camera


@dataclass
class Photo:
    """One captured frame of a scan: its camera and where its pixels live on disk."""
    camera: Camera
    color_path: Path
    depth_path: Path | None = None   # 16-bit millimetres, same pixel grid as the camera
    name: str = ""
    # The depth image's own camera (same pose) when its intrinsics differ from the colour camera's
    # (ScanNet, BundleFusion); None = the colour camera scaled to the depth image's size.
    depth_camera: Camera | None = None


@dataclass(frozen=True)
class View:
    """A viewpoint, with the scan photo taken from it when there is one.

    The photo travels with its camera so that no stage has to find it again (a lookup by camera
    identity silently loses the photo as soon as a camera is copied or rescaled).
    """
    camera: Camera
    photo: Photo | None = None

    @property
    def depth_path(self) -> Path | None:
        return self.photo.depth_path if self.photo is not None else None


@dataclass
class Appearance:
    """The mesh's own colours before stylization; the initial texture and content target come from it.

    Exactly one of the sources is used, in this order: textures (per-face UVs into one of several
    source images), vertex colours, else a neutral grey.
    """
    vertex_colors: np.ndarray | None = None        # (V,3) float32 in [0,1]
    uv: np.ndarray | None = None                   # (F,3,2) float32 per-corner UVs, OBJ convention
    textures: list[np.ndarray] = field(default_factory=list)  # (H,W,3) float32 images
    face_texture: np.ndarray | None = None         # (F,) int32 index into textures; -1 = no texture

    @property
    def has_atlas(self) -> bool:
        return self.uv is not None and len(self.textures) > 0


@dataclass
class FaceLabels:
    """A name per face: the regions a run may style differently (`--region NAME=STYLE`).

    From the input's materials, a scan's semantic labels or a per-face label file
    (inputs/regions.py); kept apart from `Appearance` because it names surfaces, not colours."""
    names: tuple[str, ...]          # label names, indexed by `face`
    face: np.ndarray                # (F,) int32 index into names; -1 = unlabelled
    source: str                     # "materials", "scannet labels FILE" or "labels FILE"

    def face_counts(self) -> dict[str, int]:
        counts = np.bincount(self.face[self.face >= 0], minlength=len(self.names))
        return {name: int(count) for name, count in zip(self.names, counts)}


@dataclass
class Scene:
    name: str
    vertices: np.ndarray            # (V,3) float64, metres
    faces: np.ndarray               # (F,3) int64
    appearance: Appearance = field(default_factory=Appearance)
    photos: list[Photo] = field(default_factory=list)
    kind: str = "object"            # "room" (cameras look out from inside) or "object" (orbit)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)   # world up (geometry/frames.py: which input gets which)
    source: str = ""                # file or folder it came from, for messages and fingerprints
    unit_scale: float = 1.0         # metres per unit of the input's coordinates (--units)
    up_source: str = "built-in"     # how `up` was chosen: a file format's convention, the capture, --up
    labels: FaceLabels | None = None  # per-face region names, when the input has any
    # Each face's index among the faces as read from the input file, before degenerate faces were
    # dropped (None: the same order and count): per-face label files count faces the input's way.
    input_faces: np.ndarray | None = None
    input_face_count: int = 0       # faces as read from the input file (0: len(faces))

    @property
    def bounds(self) -> np.ndarray:
        return np.stack([self.vertices.min(0), self.vertices.max(0)])


@dataclass
class TexturedMesh:
    """A mesh with one UV atlas and one texture: what stylization produces and exporters write."""
    vertices: np.ndarray            # (V,3) float64
    faces: np.ndarray               # (F,3) int64
    uv: np.ndarray                  # (F,3,2) float32 per-corner UVs, OBJ convention
    texture: np.ndarray             # (H,W,3) float32 in [0,1], row 0 = top of the image (v = 1)
