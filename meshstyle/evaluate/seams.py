"""The seams metric: colour contrast across UV seams against across ordinary edges (see metrics.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meshstyle.evaluate.rendering import RenderedView
from meshstyle.geometry.scene import TexturedMesh


def edge_classes(mesh: TexturedMesh) -> tuple[np.ndarray, np.ndarray]:
    """Face pairs sharing a 3-D edge, as sorted keys `f_low * F + f_high`, and whether each edge
    is a UV seam (its corners have different UVs on the two faces)."""
    faces = _welded_faces(mesh.vertices, mesh.faces)
    face_count = len(faces)
    corner_pairs = np.array([[0, 1], [1, 2], [2, 0]])
    edge_vertices = faces[:, corner_pairs]                           # (F,3,2) welded vertex ids
    edge_uvs = mesh.uv[:, corner_pairs].astype(np.float64)           # (F,3,2,2)
    # Orient every edge from its lower vertex id so that both faces list its corners alike.
    flip = edge_vertices[..., 0] > edge_vertices[..., 1]
    edge_vertices = np.where(flip[..., None], edge_vertices[..., ::-1], edge_vertices)
    edge_uvs = np.where(flip[..., None, None], edge_uvs[:, :, ::-1], edge_uvs)
    edge_keys = edge_vertices[..., 0].astype(np.int64) * (faces.max() + 1) + edge_vertices[..., 1]
    edge_keys, edge_uvs = edge_keys.reshape(-1), edge_uvs.reshape(-1, 4)
    face_of = np.repeat(np.arange(face_count), 3)
    order = np.argsort(edge_keys, kind="stable")
    edge_keys, edge_uvs, face_of = edge_keys[order], edge_uvs[order], face_of[order]
    # Pair consecutive entries of one edge (manifold edges have two faces; extra faces pair on).
    same = edge_keys[1:] == edge_keys[:-1]
    first, second = np.nonzero(same)[0], np.nonzero(same)[0] + 1
    face_a, face_b = face_of[first], face_of[second]
    seam = np.abs(edge_uvs[first] - edge_uvs[second]).max(axis=1) > 1e-6
    pair_keys = np.minimum(face_a, face_b).astype(np.int64) * face_count + np.maximum(face_a, face_b)
    order = np.argsort(pair_keys)
    return pair_keys[order], seam[order]


def _welded_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces re-indexed so that vertices at one position (to 1e-6 of the extent) share an id."""
    extent = max(float(np.ptp(vertices, axis=0).max()), 1e-9)
    quantised = np.round(vertices / (extent * 1e-6)).astype(np.int64)
    _, welded = np.unique(quantised, axis=0, return_inverse=True)
    return welded.reshape(-1)[faces]


@dataclass
class _EdgeContrast:
    """Mean absolute colour difference across the pixel pairs that straddle each kind of edge."""
    seam_diff: float
    interior_diff: float
    seam_pairs: int
    interior_pairs: int

    @property
    def ratio(self) -> float:
        return self.seam_diff / self.interior_diff if self.interior_diff > 0 else float("nan")


def seam_metrics(views: list[RenderedView], mesh: TexturedMesh,
                 originals: list[RenderedView] | None = None) -> dict[str, float]:
    """Seam figures of the views; with `originals` (the same views with the initial texture) also
    `original_ratio`, the ratio the mesh's own colours already have (they often change at the
    creases where charts end)."""
    pair_keys, is_seam = edge_classes(mesh)
    if not is_seam.any():
        return {"skipped": "the mesh has no UV seams"}
    contrast = _edge_contrast(views, pair_keys, is_seam, len(mesh.faces))
    if contrast.seam_pairs == 0:
        return {"skipped": "no UV seam is in view"}
    figures = {
        "seam_diff": contrast.seam_diff,
        "interior_diff": contrast.interior_diff,
        "ratio": contrast.ratio,
        "seam_pairs": float(contrast.seam_pairs),
        "interior_pairs": float(contrast.interior_pairs),
    }
    if originals is not None:
        figures["original_ratio"] = _edge_contrast(originals, pair_keys, is_seam, len(mesh.faces)).ratio
    figures["views"] = float(len(views))
    return figures


def _edge_contrast(views: list[RenderedView], pair_keys: np.ndarray, is_seam: np.ndarray,
                   face_count: int) -> _EdgeContrast:
    sums = {True: 0.0, False: 0.0}
    counts = {True: 0, False: 0}
    for view in views:
        face_id = view.fragments.face_id.numpy()
        # Right neighbours, then lower neighbours.
        for a_slice, b_slice in (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),
                                 ((slice(0, -1), slice(None)), (slice(1, None), slice(None)))):
            face_a, face_b = face_id[a_slice], face_id[b_slice]
            crossing = (face_a >= 0) & (face_b >= 0) & (face_a != face_b)
            if not crossing.any():
                continue
            low = np.minimum(face_a[crossing], face_b[crossing]).astype(np.int64)
            high = np.maximum(face_a[crossing], face_b[crossing]).astype(np.int64)
            keys = low * face_count + high
            where = np.searchsorted(pair_keys, keys).clip(0, len(pair_keys) - 1)
            # Faces that meet only at a vertex, or across an occlusion, share no edge: not counted.
            adjacent = pair_keys[where] == keys
            difference = np.abs(view.image[a_slice][crossing] - view.image[b_slice][crossing]).mean(axis=1)
            for seam in (True, False):
                chosen = adjacent & (is_seam[where] == seam)
                sums[seam] += float(difference[chosen].sum())
                counts[seam] += int(chosen.sum())

    def mean(seam: bool) -> float:
        return sums[seam] / counts[seam] if counts[seam] else float("nan")

    return _EdgeContrast(seam_diff=mean(True), interior_diff=mean(False),
                         seam_pairs=counts[True], interior_pairs=counts[False])
