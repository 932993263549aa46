"""Seamless gutters: each UV chart's gutter holds the paint of the surface across its border.

A chart ends at a UV seam, but the surface goes on in another chart. Bilinear and mip-mapped
lookups near a chart's border read its gutter texels, so when those hold the chart's own border
colour (dilation), a stroke visibly stops at every seam. Here every gutter texel is placed on the
surface by walking from its chart over the seam: its UV position is extrapolated in the plane of
the nearest face of its chart, and the point is unfolded across each edge it leaves by (rotated
about that edge into the next face's plane) until it lies inside a face, as if the surface had
been flattened across the seam. The texel then takes the bilinear paint at that face's own UV.

`build_seam_fill` computes that gutter -> source map once per atlas (cached on disk with the atlas);
`fill_seams` applies it to a torch texture, differentiably, so the optimiser's gradient at gutter
texels flows to the texels across the seam; `fill_seams_numpy` does the same for exported images.
Sources are always covered texels of the target chart, so one pass is exact (no gutter reads a gutter).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.ndimage import distance_transform_cdt, distance_transform_edt
from scipy.sparse import csr_matrix, vstack

from meshstyle.atlas.charts import chart_labels
from meshstyle.atlas.unwrap import rasterize_atlas
from meshstyle.common.cache import cache_dir, fingerprint
from meshstyle.common.io import atomic_path
from meshstyle.common.kernels import parallel_kernel, prange
from meshstyle.common.progress import warn

SEAM_GUTTER_TEXELS = 4       # gutter ring filled across seams: mip level 2 still reads paint
SEAM_BAND = 3                # texels on each side of a seam cross-faded with the other side
MAX_WALK = 24                # faces a gutter point may cross before it is clamped where it is
SEAMS_VERSION = 2            # bump when the map changes, so cached maps are not reused


@dataclass
class SeamFill:
    """Gutter texel -> bilinear source texels on the surface across the chart border."""
    size: int                 # texture side the map belongs to
    gutter: np.ndarray        # (G,) int64 flat texel index (row * size + col) of each gutter texel
    source: np.ndarray        # (G,4) int64 flat texel indices it reads
    weight: np.ndarray        # (G,4) float32 bilinear weights, summing to 1
    across: int               # gutter texels whose source lies in another chart (across a seam)
    band: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))     # (B,) flat covered texels
    mirror: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # (B,) flat gutter texel
    blend: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (B,) share taken from it
    seconds: float = 0.0
    cached: bool = False

    def info(self) -> dict:
        return {"gutter_texels": int(len(self.gutter)), "across_seams": int(self.across),
                "seconds": round(self.seconds, 3), "cached": self.cached}

    def linear(self) -> "_Linear":
        """The fill as one sparse linear map (composed on first use, kept with the map)."""
        if getattr(self, "_linear", None) is None:
            object.__setattr__(self, "_linear", _compose(self))
        return self._linear

    def torch_indices(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        key = str(device)
        cached = getattr(self, "_torch", {})
        if key not in cached:
            cached[key] = tuple(torch.from_numpy(array).to(device) for array in
                                (self.gutter, self.source, self.weight, self.band, self.mirror, self.blend))
            object.__setattr__(self, "_torch", cached)
        return cached[key]


def fill_seams(texture: torch.Tensor, seams: SeamFill) -> torch.Tensor:
    """(C,H,W) texture with seamless chart borders, out of place and differentiable: gutters re-read
    from across the seams, the band of texels along each seam cross-faded with the paint on the
    other side (so both sides meet at the same colour), then the gutters re-read from the result.
    A gutter texel's gradient goes to its source texels, not to itself.

    The three steps are one sparse linear map of the texture, applied by compiled loops: gathers
    in both directions (advanced indexing and index_copy in torch cost 0.5 s per step at 1024^2)."""
    channels, height, width = texture.shape
    if height != seams.size or width != seams.size or len(seams.gutter) == 0:
        return texture
    if texture.device.type != "cpu":
        return _fill_seams_torch(texture, seams)
    return _SeamFillFunction.apply(texture.reshape(channels, -1), seams).view(channels, height, width)


def fill_seams_numpy(texture: np.ndarray, seams: SeamFill) -> np.ndarray:
    """`fill_seams` on an (H,W,C) image (a new array)."""
    height, width = texture.shape[:2]
    result = np.array(texture, dtype=np.float32)
    if height != seams.size or width != seams.size or len(seams.gutter) == 0:
        return result
    linear = seams.linear()
    flat = result.reshape(height * width, -1)
    flat[linear.targets] = linear.rows @ flat
    return result


@dataclass
class _Linear:
    """The seam fill as rows of a sparse matrix: texel `targets[i]` = rows[i] . texture, and its
    transpose (`columns[j]` receives transpose[j] . gradient of the targets)."""
    targets: np.ndarray
    rows: csr_matrix          # (T, N)
    columns: np.ndarray
    transpose: csr_matrix     # (len(columns), T)


def _compose(seams: SeamFill) -> _Linear:
    """Refill, cross-fade, refill, composed into rows that read only the unfilled texture."""
    count = seams.size * seams.size
    gutter_rows, bands = len(seams.gutter), len(seams.band)
    gutter_pos = np.full(count, -1, dtype=np.int64)
    gutter_pos[seams.gutter] = np.arange(gutter_rows)
    band_pos = np.full(count, -1, dtype=np.int64)
    band_pos[seams.band] = np.arange(bands)
    # Cross-faded band texels: (1 - a) of themselves, a of the gutter texel across (read from the texture).
    mirror_row = gutter_pos[seams.mirror]
    band_matrix = csr_matrix((np.r_[1.0 - seams.blend, (seams.blend[:, None] * seams.weight[mirror_row]).ravel()],
                              (np.r_[np.arange(bands), np.repeat(np.arange(bands), 4)],
                               np.r_[seams.band, seams.source[mirror_row].ravel()])), shape=(bands, count))
    # Gutter texels read their sources after the cross-fade.
    row = np.repeat(np.arange(gutter_rows), 4)
    source, weight = seams.source.ravel(), seams.weight.ravel().astype(np.float64)
    in_band = band_pos[source] >= 0
    plain = csr_matrix((weight[~in_band], (row[~in_band], source[~in_band])), shape=(gutter_rows, count))
    via_band = csr_matrix((weight[in_band], (row[in_band], band_pos[source[in_band]])), shape=(gutter_rows, bands))
    rows = vstack([plain + via_band @ band_matrix, band_matrix]).tocsr()
    rows.sum_duplicates()
    rows.eliminate_zeros()
    rows = rows.astype(np.float32)
    transpose = rows.T.tocsr()
    columns = np.flatnonzero(np.diff(transpose.indptr))
    return _Linear(np.r_[seams.gutter, seams.band].astype(np.int64), rows, columns, transpose[columns].tocsr())


class _SeamFillFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, flat: torch.Tensor, seams: SeamFill) -> torch.Tensor:
        linear = seams.linear()
        ctx.linear = linear
        source = flat.detach().contiguous().float()
        out = source.clone()
        _gather_rows(out.numpy(), source.numpy(), linear.targets, linear.rows.indptr, linear.rows.indices,
                     linear.rows.data)
        return out.to(flat.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        linear = ctx.linear
        upstream = grad.detach().contiguous().float()
        result = upstream.clone()
        _scatter_rows(result.numpy(), upstream.numpy(), linear.targets, linear.columns,
                      linear.transpose.indptr, linear.transpose.indices, linear.transpose.data)
        return result.to(grad.dtype), None


# Both loops read each sparse entry once for all channels (channels innermost): reading the
# entries again per channel took 87 ms instead of 67 ms for redkitchen's 2048² map (measured).
@parallel_kernel
def _gather_rows(out, source, targets, indptr, indices, data):  # pragma: no cover - compiled
    channels = out.shape[0]
    for row in prange(len(targets)):
        target = targets[row]
        for channel in range(channels):
            out[channel, target] = 0.0
        for k in range(indptr[row], indptr[row + 1]):
            texel, weight = indices[k], data[k]
            for channel in range(channels):
                out[channel, target] += weight * source[channel, texel]


@parallel_kernel
def _scatter_rows(result, upstream, targets, columns, indptr, indices, data):  # pragma: no cover - compiled
    channels = result.shape[0]
    # Targets were overwritten in the forward pass: their own gradient stops there...
    for row in prange(len(targets)):
        for channel in range(channels):
            result[channel, targets[row]] = 0.0
    # ...and goes on to the texels they read.
    for column in prange(len(columns)):
        texel = columns[column]
        for k in range(indptr[column], indptr[column + 1]):
            target, weight = targets[indices[k]], data[k]
            for channel in range(channels):
                result[channel, texel] += weight * upstream[channel, target]


def _fill_seams_torch(texture: torch.Tensor, seams: SeamFill) -> torch.Tensor:
    """The same map with torch gathers, for textures on an accelerator."""
    channels, height, width = texture.shape
    gutter, source, weight, band, mirror, blend = seams.torch_indices(texture.device)
    weight, blend = weight.to(texture.dtype), blend.to(texture.dtype)

    def refill(flat: torch.Tensor) -> torch.Tensor:
        values = flat.index_select(1, source.reshape(-1)).view(channels, -1, 4)
        return flat.index_copy(1, gutter, (values * weight).sum(dim=-1))

    flat = refill(texture.reshape(channels, -1))
    if len(band):
        flat = refill(flat.index_copy(1, band, torch.lerp(flat.index_select(1, band), flat.index_select(1, mirror), blend)))
    return flat.view(channels, height, width)


# ----------------------------------------------------------------------------------------------
# Building the map


def seam_fill_for(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, size: int,
                  width: int = SEAM_GUTTER_TEXELS) -> SeamFill:
    """`build_seam_fill`, read from / written to the on-disk cache (keyed by geometry, UVs, size)."""
    started = time.perf_counter()
    key = fingerprint("seams", SEAMS_VERSION, np.asarray(vertices, np.float64), np.asarray(faces, np.int64),
                      np.asarray(uv, np.float32), int(size), int(width))
    path = cache_dir("seams") / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return SeamFill(size=int(stored["size"]), gutter=stored["gutter"], source=stored["source"],
                                weight=stored["weight"], across=int(stored["across"]), band=stored["band"],
                                mirror=stored["mirror"], blend=stored["blend"],
                                seconds=time.perf_counter() - started, cached=True)
        except Exception as exc:  # a damaged cache entry is recomputed, never trusted
            warn(f"ignoring unreadable seam cache entry {path.name} ({type(exc).__name__})")
    seams = build_seam_fill(vertices, faces, uv, size, width)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, size=seams.size, gutter=seams.gutter, source=seams.source,
                         weight=seams.weight, across=seams.across, band=seams.band, mirror=seams.mirror,
                         blend=seams.blend)
    except OSError as exc:  # a read-only cache only costs time
        warn(f"could not cache the seam map ({exc})")
    return seams


def build_seam_fill(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, size: int,
                    width: int = SEAM_GUTTER_TEXELS) -> SeamFill:
    """The gutter -> source map of the empty texels within `width` (chessboard) of a chart."""
    started = time.perf_counter()
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    uv = np.asarray(uv, dtype=np.float64)
    face_id, _ = rasterize_atlas(uv, size)
    covered = face_id >= 0
    empty = np.zeros(0, dtype=np.int64)
    if not covered.any() or covered.all():
        return SeamFill(size, empty, np.zeros((0, 4), np.int64), np.zeros((0, 4), np.float32), 0,
                        time.perf_counter() - started)
    distance, (near_row, near_col) = distance_transform_cdt(~covered, metric="chessboard", return_indices=True)
    gutter_mask = ~covered & (distance <= width)
    rows, cols = np.nonzero(gutter_mask)
    start_face = face_id[near_row[rows, cols], near_col[rows, cols]]
    texel_uv = np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], axis=1)

    chart = chart_labels(uv)
    adjacent = face_adjacency(vertices, faces)
    corners = vertices[faces]                                                # (F,3,3)
    point, face = _extrapolate(texel_uv, uv[start_face], corners[start_face]), start_face.copy()
    bary, face = _walk(point, face, corners, adjacent)

    source_uv = np.einsum("gk,gkd->gd", bary, uv[face])
    source, weight = _bilinear_taps(source_uv, size, face_id, chart, chart[face])
    # A point whose taps all lie outside its chart (a sliver) reads the nearest texel of its chart.
    lost = weight.sum(axis=1) <= 0
    if lost.any():
        x = np.clip(np.round(source_uv[lost, 0] * size - 0.5), 0, size - 1).astype(np.int64)
        y = np.clip(np.round((1.0 - source_uv[lost, 1]) * size - 0.5), 0, size - 1).astype(np.int64)
        nearest = near_row[y, x] * size + near_col[y, x]
        source[lost] = nearest[:, None]
        weight[lost] = 0.25
    weight /= weight.sum(axis=1, keepdims=True)
    crosses = chart[face] != chart[start_face]
    gutter = (rows * size + cols).astype(np.int64)
    band, mirror, blend = _seam_band(covered, gutter[crosses], near_row * size + near_col, face_id, chart)
    return SeamFill(size=size, gutter=gutter, source=source, weight=weight.astype(np.float32),
                    across=int(crosses.sum()), band=band, mirror=mirror, blend=blend,
                    seconds=time.perf_counter() - started)


def _seam_band(covered: np.ndarray, crossing: np.ndarray, nearest_covered: np.ndarray, face_id: np.ndarray,
               chart: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The covered texels within SEAM_BAND texels of a seam, the gutter texel at their mirror image
    across it (which holds the paint across the seam), and how much of that paint to take: 1/2 at
    the border (both sides meet at their mean) falling linearly to 0 beyond SEAM_BAND texels."""
    size = covered.shape[0]
    distance, (row_e, col_e) = distance_transform_edt(covered, return_indices=True)
    rows, cols = np.nonzero(covered & (distance < SEAM_BAND + 0.5))
    empty_row, empty_col = row_e[rows, cols], col_e[rows, cols]
    is_crossing = np.zeros(size * size, dtype=bool)
    is_crossing[crossing] = True
    d = distance[rows, cols]
    # The border lies half a texel before the nearest empty texel: the mirror image of a texel d
    # away from that texel lies 2d - 1 texels further on.
    step = (2 * d - 1) / np.maximum(d, 1e-9)
    mirror_row = np.round(rows + (empty_row - rows) * step).astype(np.int64)
    mirror_col = np.round(cols + (empty_col - cols) * step).astype(np.int64)
    inside = (mirror_row >= 0) & (mirror_row < size) & (mirror_col >= 0) & (mirror_col < size)
    mirror = np.where(inside, mirror_row * size + mirror_col, 0)
    own_chart = chart[face_id[rows, cols]]
    # The mirror must lie in this chart's own gutter and hold paint from across a seam.
    nearest_face = face_id.ravel()[nearest_covered.ravel()[mirror]]
    usable = (inside & is_crossing[mirror] & (chart[nearest_face] == own_chart)
              & is_crossing[empty_row * size + empty_col])
    blend = 0.5 * (1.0 - (d - 1.0) / SEAM_BAND)
    return ((rows * size + cols)[usable].astype(np.int64), mirror[usable].astype(np.int64),
            blend[usable].astype(np.float32))


def face_adjacency(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,3) the face across the edge opposite each corner (-1 on a boundary). Vertices are welded
    by position, so meshes whose exporter split vertices at UV seams stay connected there; on an
    edge shared by more than two faces, faces pair up in sorted order."""
    extent = max(float(np.ptp(vertices, axis=0).max()), 1e-9) if len(vertices) else 1.0
    _, welded = np.unique(np.round(vertices / (extent * 1e-7)).astype(np.int64), axis=0, return_inverse=True)
    welded = welded.reshape(-1)[faces]
    a, b = welded[:, [1, 2, 0]], welded[:, [2, 0, 1]]             # edge opposite corner k
    key = (np.minimum(a, b) * (int(welded.max()) + 1) + np.maximum(a, b)).ravel()
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    position = np.arange(len(key)) - np.maximum.accumulate(np.where(starts, np.arange(len(key)), 0))
    # Entries i, i+1 of one edge pair up when i is at an even place in its run of equal keys.
    pair = np.flatnonzero((position[:-1] % 2 == 0) & (sorted_key[1:] == sorted_key[:-1]))
    h1, h2 = order[pair], order[pair + 1]
    adjacent = np.full(len(key), -1, dtype=np.int64)
    adjacent[h1], adjacent[h2] = h2 // 3, h1 // 3
    return adjacent.reshape(-1, 3)


def _extrapolate(point_uv: np.ndarray, face_uv: np.ndarray, face_corners: np.ndarray) -> np.ndarray:
    """3-D points in the planes of faces at UV positions (outside the faces: extrapolated)."""
    e1, e2 = face_uv[:, 1] - face_uv[:, 0], face_uv[:, 2] - face_uv[:, 0]
    p = point_uv - face_uv[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    safe = np.where(np.abs(det) > 1e-18, det, 1.0)
    b1 = (p[:, 0] * e2[:, 1] - p[:, 1] * e2[:, 0]) / safe
    b2 = (e1[:, 0] * p[:, 1] - e1[:, 1] * p[:, 0]) / safe
    degenerate = np.abs(det) <= 1e-18
    b1[degenerate], b2[degenerate] = 1 / 3, 1 / 3
    return (face_corners[:, 0] * (1 - b1 - b2)[:, None] + face_corners[:, 1] * b1[:, None]
            + face_corners[:, 2] * b2[:, None])


def _barycentric(point: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(N,3) barycentric coordinates of points projected into their triangles' planes."""
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    p = point - corners[:, 0]
    d11, d12, d22 = (e1 * e1).sum(1), (e1 * e2).sum(1), (e2 * e2).sum(1)
    p1, p2 = (p * e1).sum(1), (p * e2).sum(1)
    det = d11 * d22 - d12 * d12
    safe = np.where(det > 1e-30, det, 1.0)
    b1 = (d22 * p1 - d12 * p2) / safe
    b2 = (d11 * p2 - d12 * p1) / safe
    bary = np.stack([1 - b1 - b2, b1, b2], axis=1)
    bary[det <= 1e-30] = 1 / 3
    return bary


def _walk(point: np.ndarray, face: np.ndarray, corners: np.ndarray, adjacent: np.ndarray,
          ) -> tuple[np.ndarray, np.ndarray]:
    """Move points (each in its face's plane) across face edges, unfolding the surface, until
    each lies inside a face; returns (barycentric weights, face). Points that reach a boundary
    edge, or walk MAX_WALK faces, are clamped into the face they are on."""
    point, face = point.copy(), face.copy()
    bary = np.zeros((len(point), 3))
    active = np.arange(len(point))
    tolerance = -1e-6
    for _ in range(MAX_WALK):
        if len(active) == 0:
            break
        here = corners[face[active]]
        weights = _barycentric(point[active], here)
        inside = weights.min(axis=1) >= tolerance
        exit_corner = weights.argmin(axis=1)
        neighbour = adjacent[face[active], exit_corner]
        stop = inside | (neighbour < 0)
        bary[active[stop]] = weights[stop]
        moving = ~stop
        index = active[moving]
        if len(index) == 0:
            active = index
            break
        k = exit_corner[moving]
        tri = here[moving]
        a = tri[np.arange(len(k)), (k + 1) % 3]
        b = tri[np.arange(len(k)), (k + 2) % 3]
        edge = b - a
        edge /= np.maximum(np.linalg.norm(edge, axis=1, keepdims=True), 1e-30)
        offset = point[index] - a
        along = (offset * edge).sum(1, keepdims=True)
        across = np.linalg.norm(offset - along * edge, axis=1, keepdims=True)
        # Into the next face: perpendicular to the shared edge, towards that face's far corner.
        next_face = neighbour[moving]
        next_corners = corners[next_face]
        far = next_corners - a[:, None, :]
        far_offset = far - (far * edge[:, None, :]).sum(2, keepdims=True) * edge[:, None, :]
        far_distance = np.linalg.norm(far_offset, axis=2)
        inward = far_offset[np.arange(len(k)), far_distance.argmax(axis=1)]
        inward /= np.maximum(np.linalg.norm(inward, axis=1, keepdims=True), 1e-30)
        point[index] = a + along * edge + across * inward
        face[index] = next_face
        active = index
    if len(active):
        bary[active] = _barycentric(point[active], corners[face[active]])
    bary = np.clip(bary, 0.0, None)
    total = bary.sum(axis=1, keepdims=True)
    bary = np.where(total > 0, bary / np.where(total > 0, total, 1.0), 1 / 3)
    return bary, face


def _bilinear_taps(source_uv: np.ndarray, size: int, face_id: np.ndarray, chart: np.ndarray,
                   source_chart: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 4 bilinear texels around each UV and their weights, zero for texels outside its chart."""
    x = source_uv[:, 0] * size - 0.5
    y = (1.0 - source_uv[:, 1]) * size - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    taps, weights = [], []
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        col = np.clip(x0 + dx, 0, size - 1).astype(np.int64)
        row = np.clip(y0 + dy, 0, size - 1).astype(np.int64)
        tap_face = face_id[row, col]
        same_chart = (tap_face >= 0) & (chart[np.maximum(tap_face, 0)] == source_chart)
        taps.append(row * size + col)
        weights.append(np.where(same_chart, w, 0.0))
    return np.stack(taps, axis=1), np.stack(weights, axis=1)


