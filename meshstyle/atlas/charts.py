"""UV charts (islands) of an atlas, and whether they are big enough to hold strokes."""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def chart_labels(uv: np.ndarray) -> np.ndarray:
    """(F,) UV island of every face: faces joined through shared UV corners (quantised to 1e-6)."""
    face_count = len(uv)
    if face_count == 0:
        return np.zeros(0, dtype=np.int64)
    quantised = np.round(np.asarray(uv, np.float64).reshape(-1, 2) * 1e6).astype(np.int64)
    _, point_id = np.unique(quantised[:, 0] * 4_000_003 + quantised[:, 1], return_inverse=True)
    face = np.repeat(np.arange(face_count), 3)
    nodes = face_count + int(point_id.max()) + 1
    graph = coo_matrix((np.ones(len(face), dtype=np.int8), (face, face_count + point_id.ravel())),
                       shape=(nodes, nodes))
    return connected_components(graph, directed=False)[1][:face_count].astype(np.int64)


# ----------------------------------------------------------------------------------------------
# When a kept atlas is too fragmented for strokes


MIN_CHART_SIDE_TEXELS = 24.0  # about one stroke: smaller charts hold stroke fragments, not strokes


def chart_fragmentation(uv: np.ndarray, size: int) -> tuple[bool, dict]:
    """Whether an existing atlas is made of charts too small for strokes, and the figures behind it.

    A stroke crosses a seam through the gutter fill (atlas.seams), which reaches a few texels and
    needs the gutter space to exist; scanning pipelines often write thousands of tiny charts packed
    edge to edge, so most strokes would be cut into pieces. Measure: the texel-weighted median chart
    side (sqrt of a chart's area in texels at `size`; half of the used texels lie in charts at most
    this wide). Fragmented when it is below MIN_CHART_SIDE_TEXELS.
    """
    uv = np.asarray(uv, dtype=np.float64)
    chart = chart_labels(uv)
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    texels = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) * size * size
    chart_texels = np.bincount(chart, weights=texels) if len(chart) else np.zeros(0)
    chart_texels = chart_texels[chart_texels > 0]
    if len(chart_texels) == 0:
        return False, {"charts": 0}
    order = np.argsort(chart_texels)
    cumulative = np.cumsum(chart_texels[order])
    median = float(np.sqrt(chart_texels[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])]))
    figures = {"charts": int(len(chart_texels)), "faces_per_chart": round(len(uv) / len(chart_texels), 2),
               "median_chart_side_texels": round(median, 1)}
    return median < MIN_CHART_SIDE_TEXELS, figures
