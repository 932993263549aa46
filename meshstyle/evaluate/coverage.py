"""The coverage metric: the share of the surface and of the texture that the cameras see (see metrics.py)."""
from __future__ import annotations

import numpy as np

from meshstyle.atlas.unwrap import sample_wrapped
from meshstyle.geometry.camera import Camera
from meshstyle.geometry.scene import TexturedMesh
from meshstyle.raster.fragments import Fragments
from meshstyle.views.coverage import painted_share, texel_points, visible_points

MAX_COVERAGE_SIZE = 1024
PAINT_THRESHOLD = 0.02   # mean |stylized - original| over channels above which an unseen texel counts as painted


def coverage_metrics(cameras: list[Camera], fragments: list[Fragments], mesh: TexturedMesh, *,
                     original: TexturedMesh | None = None, max_size: int = MAX_COVERAGE_SIZE,
                     depth_tolerance: float = 0.02) -> dict[str, float]:
    size = int(min(max(mesh.texture.shape[:2]), max_size))
    texels = texel_points(mesh.vertices, mesh.faces, mesh.uv, size)
    used_count = len(texels.index)
    if used_count == 0:
        return {"skipped": "the atlas has no charts"}
    seen = np.zeros(used_count, dtype=bool)
    for camera, view in zip(cameras, fragments):
        seen |= visible_points(texels.point, texels.face, camera, view, depth_tolerance)
    unseen = used_count - int(seen.sum())
    figures = {
        "seen_share": float(seen.sum() / used_count),
        "unseen_share": float(unseen / used_count),
        "unseen_texels": float(unseen),
        "used_texels": float(used_count),
        "atlas_size": float(size),
        "views": float(len(cameras)),
    }
    if original is not None and original.texture.shape == mesh.texture.shape:
        rows, cols = np.divmod(texels.index, size)
        centres = np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=1)
        figures["painted_share"] = painted_share(sample_wrapped(mesh.texture, centres),
                                                 sample_wrapped(original.texture, centres), seen,
                                                 PAINT_THRESHOLD)
    return figures
