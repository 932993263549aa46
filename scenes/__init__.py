"""Built-in scenes generated in code (z-up, metres): no download needed for demos and tests."""
from __future__ import annotations

from typing import Callable

from meshstyle.errors import InputError
from meshstyle.geometry.scene import Scene


# The builders load trimesh (most of a second) only when a scene is built: the CLI looks up the
# names to refuse a missing scene before anything heavy loads.
def demo_object(seed: int = 0) -> Scene:
    from .blob import demo_object as build_object

    return build_object(seed)


def demo_room(seed: int = 0) -> Scene:
    from .room import demo_room as build_room

    return build_room(seed)


SCENES: dict[str, tuple[Callable[[int], Scene], str]] = {
    "demo-room": (demo_room, "furnished 4 x 5 x 2.7 m room with a door, two windows, sofa, table, "
                             "chairs, boxes and a ball (~100k triangles)"),
    "demo-object": (demo_object, "sculpted torus knot about 1 m across with painted bands (24k triangles)"),
}


def build(name: str, seed: int = 0) -> Scene:
    """The built-in scene called `name`, generated deterministically from `seed`."""
    if name not in SCENES:
        raise InputError(name, f"unknown scene; built-in scenes: {', '.join(SCENES)}")
    builder, _description = SCENES[name]
    return builder(seed)


__all__ = ["SCENES", "build", "demo_object", "demo_room"]
