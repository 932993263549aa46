"""meshstyle: repaint the texture of a 3D mesh in the style of a painting.

The library API (the CLI is a thin layer over it)::

    import meshstyle as ms
    scene = ms.load_scene("room.ply")            # or a scan folder, or ms.scenes.demo_room()
    config = ms.load_config("settings.toml")     # any config keys; ms.StylizeConfig() = the defaults
    result = ms.stylize(scene, style="starry.jpg", config=config)
    result.save("out/")
    frames = ms.render(result, cameras=ms.cameras.orbit(scene, n=36))

Heavy modules (torch, open3d) load on first use, so `meshstyle --version` stays instant.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "StylizeConfig": ("meshstyle.config", "StylizeConfig"),
    "load_config": ("meshstyle.config", "load_config"),
    "RegionConfig": ("meshstyle.config", "RegionConfig"),
    "load_scene": ("meshstyle.inputs.load", "load_scene"),
    "stylize": ("meshstyle.pipeline", "stylize"),
    "render": ("meshstyle.outputs.run_folder", "render"),
    "load_result": ("meshstyle.outputs.run_folder", "load_result"),
    "StylizeResult": ("meshstyle.outputs.run_folder", "StylizeResult"),
    "InputError": ("meshstyle.errors", "InputError"),
    "cameras": ("meshstyle.views.cameras", None),
    "scenes": ("meshstyle.scenes", None),
    "styles": ("meshstyle.inputs.styles", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'meshstyle' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value

