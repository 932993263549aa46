"""The atlas side a scene needs for a texel density, and the side an atlas is packed for."""
from __future__ import annotations

import math

from meshstyle.geometry.mesh import face_areas
from meshstyle.geometry.scene import Scene

# Share of an atlas that UV islands fill after packing with gutters (xatlas/UVAtlas on scans).
ATLAS_FILL = 0.6
# The atlas is packed (its gutters measured in texels) at this side when the final side comes from
# the views, which are rasterized on it; the texture then only grows from it, so gutters only widen.
VIEW_PACK_SIZE = 1024


def default_texture_size(scene: Scene, texels_per_metre: float, max_size: int = 4096) -> int:
    """Side of a square atlas giving the scene's surface `texels_per_metre` after packing: the
    smallest power of two that does, at most `max_size` (rounded down to a power of two)."""
    area = float(face_areas(scene.vertices, scene.faces).sum())
    needed = math.sqrt(area * texels_per_metre ** 2 / ATLAS_FILL)
    return power_of_two_side(needed, 64, max_size)


def pack_size(scene: Scene, size: int, texels_per_metre: float, max_size: int) -> int:
    """The side an atlas is unwrapped for: the configured side, a side for a texel density, or
    (both 0) VIEW_PACK_SIZE, which `views.texel_density.view_texture_size` may later enlarge."""
    if size:
        return size
    if texels_per_metre > 0:
        return default_texture_size(scene, texels_per_metre, max_size)
    return power_of_two_side(VIEW_PACK_SIZE, 64, max_size)


def power_of_two_side(side: float, smallest: int, largest: int) -> int:
    """The smallest power of two >= side, within [smallest, largest] (largest rounded down to one)."""
    top = 2 ** int(math.log2(max(largest, 1)))
    return int(min(max(2 ** math.ceil(math.log2(max(side, 1.0))), smallest), top))
