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
class Scene:
    name: str
    vertices: np.ndarray            # (V,3) float64, metres
    faces: np.ndarray               # (F,3) int64
    appearance: Appearance = field(default_factory=Appearance)
    photos: list[Photo] = field(default_factory=list)
    kind: str = "object"            # "room" (cameras look out from inside) or "object" (orbit)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)   # world up; glTF files are +y up
    source: str = ""                # file or folder it came from, for messages and fingerprints

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
