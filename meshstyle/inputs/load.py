"""`load_scene`: a mesh file, a scan folder or a built-in scene name, whichever `source` names."""
from __future__ import annotations

from pathlib import Path

import scenes

from meshstyle.config import SceneConfig
from meshstyle.errors import InputError
from meshstyle.geometry.scene import Scene
from meshstyle.inputs.meshes import MESH_SUFFIXES, load_mesh_file
from meshstyle.inputs.scans import load_scan


def load_scene(source: str | Path, config: SceneConfig | None = None) -> Scene:
    """A mesh file, a scan folder, or the name of a built-in scene (`meshstyle scenes`)."""
    path = Path(source)
    if path.is_dir():
        return load_scan(path, config or SceneConfig())
    if path.exists():
        return load_mesh_file(path)
    if isinstance(source, str) and path.suffix.lower() not in MESH_SUFFIXES:
        builtin = _builtin_scene(source)
        if builtin is not None:
            return builtin
        raise InputError(source, "no such file, folder or built-in scene (see `meshstyle scenes`)")
    raise InputError(path, "no such file")


def _builtin_scene(name: str) -> Scene | None:
    if name not in scenes.SCENES:
        return None
    return scenes.build(name)
