"""`load_scene`: a mesh file, a scan folder or a built-in scene name, whichever `source` names."""
from __future__ import annotations

from pathlib import Path

from meshstyle.config import SceneConfig
from meshstyle.errors import InputError
from meshstyle.geometry.frames import apply_scene_options
from meshstyle.geometry.scene import Scene
from meshstyle.inputs.meshes import MESH_SUFFIXES, load_mesh_file
from meshstyle.inputs.regions import scannet_labels
from meshstyle.inputs.scans import load_scan


def load_scene(source: str | Path, config: SceneConfig | None = None) -> Scene:
    """A mesh file, a scan folder, or the name of a built-in scene (`meshstyle scenes`), with
    `config.up` / `config.units` applied (geometry/frames.py)."""
    config = config or SceneConfig()
    return apply_scene_options(_load(source, config), config.up, config.units)


def _load(source: str | Path, config: SceneConfig) -> Scene:
    path = Path(source)
    if path.is_dir():
        scene = load_scan(path, config)
        scene.up_source = "capture"
        return scene
    if path.exists():
        scene = load_mesh_file(path)
        if path.name.endswith("_vh_clean_2.ply"):   # a ScanNet mesh given on its own
            scene.labels = scannet_labels(path, scene) or scene.labels
        return scene
    if isinstance(source, str) and path.suffix.lower() not in MESH_SUFFIXES:
        builtin = _builtin_scene(source)
        if builtin is not None:
            return builtin
        raise InputError(source, "no such file, folder or built-in scene (see `meshstyle scenes`)")
    raise InputError(path, "no such file")


def _builtin_scene(name: str) -> Scene | None:
    from meshstyle import scenes   # the built-in scenes build on the rest of meshstyle

    if name not in scenes.SCENES:
        return None
    return scenes.build(name)
