"""The atlas side a scene needs for a texel density."""
from __future__ import annotations

import math

from meshstyle.geometry.mesh import face_areas
from meshstyle.geometry.scene import Scene

# Share of an atlas that UV islands fill after packing with gutters (xatlas/UVAtlas on scans).
ATLAS_FILL = 0.6


def default_texture_size(scene: Scene, texels_per_metre: float, max_size: int = 4096) -> int:
    """Side of a square atlas giving the scene's surface `texels_per_metre` after packing: the
    smallest power of two that does, at most `max_size` (rounded down to a power of two)."""
    area = float(face_areas(scene.vertices, scene.faces).sum())
    needed = math.sqrt(area * texels_per_metre ** 2 / ATLAS_FILL)
    size = 2 ** max(6, math.ceil(math.log2(max(needed, 1.0))))
    return min(size, 2 ** int(math.log2(max(max_size, 64))))
