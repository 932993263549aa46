"""A textured mesh file (GLB/OBJ) read back as one TexturedMesh: one texture, UVs in [0, 1].

A file whose parts use several textures, or UVs that tile, is re-unwrapped and re-baked into one atlas.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from meshstyle.atlas.unwrap import bake_texture, make_atlas
from meshstyle.config import SceneConfig
from meshstyle.errors import InputError
from meshstyle.geometry.scene import TexturedMesh
from meshstyle.inputs.meshes import load_mesh_file

REBAKE_MIN_SIZE, REBAKE_MAX_SIZE = 512, 4096   # atlas side when several source textures are merged


def read_textured(path: str | Path) -> TexturedMesh:
    """A textured GLB/OBJ (ours or from elsewhere) as one mesh with one texture.

    Files whose faces use several textures, or whose UVs tile beyond one copy of the texture, are
    re-baked into a fresh atlas; files without any texture are refused.
    """
    scene = load_mesh_file(path)
    appearance = scene.appearance
    if not appearance.textures:
        raise InputError(path, "has no texture (expected a base-colour texture with UVs)")
    if len(appearance.textures) == 1 and np.all(appearance.face_texture >= 0):
        uv = _wrapped(appearance.uv)
        if uv is not None:
            return TexturedMesh(vertices=scene.vertices, faces=scene.faces, uv=uv, texture=appearance.textures[0])
    largest = max(max(image.shape[:2]) for image in appearance.textures)
    size = int(np.clip(2 ** np.ceil(np.log2(largest)), REBAKE_MIN_SIZE, REBAKE_MAX_SIZE))
    atlas = make_atlas(scene, size, SceneConfig(reunwrap=True))
    return TexturedMesh(vertices=scene.vertices, faces=scene.faces, uv=atlas.uv,
                        texture=bake_texture(scene, atlas, size))


def _wrapped(uv: np.ndarray) -> np.ndarray | None:
    """UVs moved by whole tiles into [0,1] (exact under a repeating texture), or None if impossible."""
    shifted = uv - np.floor(uv.mean(axis=1, keepdims=True))
    if shifted.min() < -1e-4 or shifted.max() > 1 + 1e-4:
        return None
    return shifted.clip(0.0, 1.0).astype(np.float32)
