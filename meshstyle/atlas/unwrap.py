"""UV atlas of a scene (per-corner UVs for its faces) and the initial texture baked into it.

An atlas belongs to one texture size: the gutter between UV islands is measured in texels.
Texel (row, col) of a size x size texture has its centre at u = (col + 0.5) / size,
v = 1 - (row + 0.5) / size: row 0 is the top of the image (v = 1), as everywhere in meshstyle.

Curved and noisy meshes are unwrapped by xatlas (the `xatlas` package), open3d's uvatlas only where
xatlas is not installed: uvatlas seeds its own random generator, so two fresh unwraps of one mesh
differ (docs/TRAPS.md), while xatlas gives the same atlas bit for bit in every process, which keeps
"same seed, same output" true on a cold cache. Either runs in a child process: unwrappers segfault on
some inputs and can take very long on fragmented scans, so a crash or a time-out falls back to
projected charts instead of killing the run.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import importlib.util

import numpy as np
from scipy.ndimage import distance_transform_cdt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from meshstyle.atlas.charts import MIN_CHART_SIDE_TEXELS, chart_fragmentation
from meshstyle.common.cache import budget_mb, cache_failed, fingerprint, prune, touch, usable_cache_dir
from meshstyle.config import SceneConfig
from meshstyle.common.io import atomic_path
from meshstyle.common.progress import log, progress, warn
from meshstyle.geometry.scene import Appearance, Scene
from meshstyle.geometry.mesh import corner_cross

GUTTER_TEXELS = 3.0            # empty texels around every island, so mip level 1 still separates them
MAX_STRETCH = 1.0 / 6.0        # uvatlas default: charts may stretch this much before being split
FACES_PER_PARTITION = 12_000   # both unwrappers are superlinear in mesh size: uvatlas took 22 s for 20k
                               # noisy faces alone and 1 s in 9 partitions; xatlas 102 s for redkitchen's
                               # 200k faces whole and 14 s in 16 parts (see _xatlas_uv)
UVATLAS_TIMEOUT_S = 240.0      # beyond this, projected charts are used instead (either unwrapper)
UVATLAS_MAX_FACES = 1_200_000  # 800k faces took 138 s on 2 busy cores: bigger meshes skip the unwrapper
NEUTRAL_GREY = 0.5
COARSE_FILL_SIDE = 256         # texels beyond the gutter take colours from a grid this coarse
ATLAS_VERSION = 4              # bump when the unwrapping changes, so cached atlases are not reused
                               # (3: xatlas replaced uvatlas; the unwrapper's name is in the key too;
                               # 4: xatlas unwraps large meshes in spatial parts)

_TEXELS_PER_CHUNK = 1 << 20    # bounds the memory of vectorised rasterization and baking


@dataclass
class Atlas:
    uv: np.ndarray              # (F,3,2) float32 per-corner UVs, OBJ convention, for scene.faces
    size: int                   # texture side in texels it was packed for (the gutter is in texels)
    charts: int                 # UV islands
    utilisation: float          # share of atlas texels whose centre lies in a triangle
    texels_per_metre: float     # sqrt(total uv area * size^2 / total surface area)
    method: str                 # "kept" | "xatlas" | "uvatlas" | "projected"
    seconds: float              # time this call took (a cache hit is fast)
    cached: bool = False        # read from the on-disk atlas cache

    def at_size(self, size: int) -> "Atlas":
        """The same UVs for a texture of side `size` >= the packed one (gutters widen, never shrink)."""
        if size < self.size:
            raise ValueError(f"an atlas packed for {self.size}^2 texels cannot be used at {size}^2: its gutters would shrink")
        return replace(self, size=size, texels_per_metre=self.texels_per_metre * size / self.size)


def atlas_info(atlas: Atlas) -> dict:
    """The atlas figures recorded in run.json."""
    return {"charts": atlas.charts, "texels_per_metre": round(atlas.texels_per_metre, 3),
            "utilisation": round(atlas.utilisation, 4), "method": atlas.method, "size": atlas.size,
            "seconds": round(atlas.seconds, 3), "cached": atlas.cached}


# ----------------------------------------------------------------------------------------------
# Making the atlas


def make_atlas(scene: Scene, size: int, config: SceneConfig | None = None) -> Atlas:
    """Keep the scene's own atlas when it is usable (unless `config.reunwrap`), else unwrap."""
    config = config or SceneConfig()
    started = time.perf_counter()
    if not config.reunwrap:
        kept_uv = usable_source_uv(scene.appearance, size)
        if kept_uv is not None and _too_fragmented(kept_uv, size):
            kept_uv = None
        if kept_uv is not None:
            return _measured(scene, kept_uv, size, "kept", started)

    cache_file = atlas_cache_file(scene, size)
    cached = _read_cached(cache_file, len(scene.faces), size) if cache_file is not None else None
    if cached is not None:
        touch(cache_file)
        cached.seconds = time.perf_counter() - started
        return cached

    uv, method = unwrap(scene.vertices, scene.faces, size)
    atlas = _measured(scene, uv, size, method, started)
    if cache_file is not None:
        _write_cached(cache_file, atlas)
        prune(cache_file.parent, budget_mb("atlas"))
    log(f"atlas: {atlas.method}, {atlas.charts} charts, {atlas.utilisation:.0%} of {size}^2 texels used, "
        f"{atlas.texels_per_metre:.0f} texels/m, {atlas.seconds:.1f} s")
    return atlas


def _too_fragmented(uv: np.ndarray, size: int) -> bool:
    """A kept atlas of charts smaller than a stroke is unwrapped again (atlas.charts.chart_fragmentation)."""
    fragmented, figures = chart_fragmentation(uv, size)
    if fragmented:
        log(f"atlas: the scene's own atlas is fragmented ({figures['charts']} charts; half of its texels lie in "
            f"charts under {figures['median_chart_side_texels']:.0f} texels a side, below "
            f"{MIN_CHART_SIDE_TEXELS:.0f}): unwrapping again so strokes run on across the surface")
    return fragmented


def atlas_cache_file(scene: Scene, size: int) -> Path | None:
    """Where an unwrapped atlas of this geometry at this size is cached (None: no usable cache)."""
    key = fingerprint("atlas", ATLAS_VERSION, unwrapper(), scene.vertices, scene.faces, size, GUTTER_TEXELS,
                      MAX_STRETCH, FACES_PER_PARTITION)
    folder = usable_cache_dir("atlas")
    return folder / f"{key}.npz" if folder is not None else None


def remember_atlas(scene: Scene, size: int, atlas: Atlas) -> None:
    """Put an atlas made elsewhere (another rank of a batch) into this machine's cache, unless one
    is there already: uvatlas (where xatlas is missing) is not deterministic, so the first atlas of a
    scene must stay the one."""
    cache_file = atlas_cache_file(scene, size)
    if cache_file is not None and atlas.method != "kept" and not cache_file.is_file():
        _write_cached(cache_file, atlas)


def usable_source_uv(appearance: Appearance, size: int) -> np.ndarray | None:
    """The scene's own per-corner UVs wrapped into [0,1], or None when they cannot be one atlas.

    Usable means: at most one source texture (several textures all live in the unit square, so their
    UVs overlap), every face textured, each face inside one tile of the texture (tiling UVs that span
    several repeats cannot be wrapped), few overlapping texels (mirrored halves would be painted
    twice) and few triangles collapsed to a point or line in UV space.
    """
    if appearance.uv is None or len(appearance.textures) > 1:
        return None
    if appearance.face_texture is not None and len(appearance.textures) and np.any(appearance.face_texture < 0):
        return None
    uv = np.asarray(appearance.uv, dtype=np.float64)
    if uv.size == 0 or not np.isfinite(uv).all():
        return None
    # Each face is moved by whole tiles so that its centre lies in [0,1)^2; this is exact under wrapping.
    uv = uv - np.floor(uv.mean(axis=1, keepdims=True))
    tolerance = 1e-4
    if uv.min() < -tolerance or uv.max() > 1 + tolerance:
        return None
    uv = uv.clip(0.0, 1.0)
    if _collapsed_share(uv) > 0.01:
        return None
    if _overlap_share(uv, min(size, 1024)) > 0.02:
        return None
    return uv.astype(np.float32)


def unwrap(vertices: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    """New per-corner UVs for `faces`.

    Projected charts first (a second at most): they are exact and well packed on axis-aligned
    scenes such as demo-room (69% of texels used at 1024, like uvatlas, in 0.2 s instead of 16 s);
    anything curved or noisy goes to `unwrapper()`, and back to the projected charts if it fails.
    """
    unwrappable = _unwrappable_faces(vertices, faces)
    uv = np.zeros((len(faces), 3, 2), dtype=np.float32)  # collapsed faces map to a point: no texels
    if not unwrappable.any():
        return uv, "projected"
    manifold_faces, source_vertex = split_to_manifold(faces[unwrappable])
    positions = vertices[source_vertex]
    projected = project_charts(positions, manifold_faces, size)
    if _axis_aligned_share(positions, manifold_faces) >= 0.97 and _uv_areas(projected.astype(np.float64)).sum() >= 0.5:
        charts, method = projected, "projected"
    elif len(manifold_faces) > UVATLAS_MAX_FACES:
        log(f"atlas: {len(manifold_faces)} faces is beyond the unwrapper's time budget; using projected charts")
        charts, method = projected, "projected"
    else:
        method = unwrapper()
        try:
            charts = _unwrap_in_child(method, positions, manifold_faces, size)
        except _UvatlasFailed as failure:
            warn(f"{method} failed ({failure}); using projected charts instead")
            charts, method = projected, "projected"
    uv[unwrappable] = charts
    return uv, method


def _axis_aligned_share(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Area-weighted mean |cos| between face normals and their nearest axis (1 for boxes)."""
    corners = vertices[faces]
    normal = corner_cross(corners)   # length = 2 area
    return float(np.abs(normal).max(axis=1).sum() / max(np.linalg.norm(normal, axis=1).sum(), 1e-30))


def _unwrappable_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces with three distinct corners and a non-zero area; the rest get no texels."""
    corners = vertices[faces]
    area2 = np.linalg.norm(corner_cross(corners), axis=1)
    extent = float(np.ptp(vertices, axis=0).max()) if len(vertices) else 0.0
    distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return distinct & (area2 > 1e-12 * extent * extent) & np.isfinite(area2)


def split_to_manifold(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give faces their own vertex copies until the mesh is an oriented manifold; positions never move.

    uvatlas segfaults on an edge shared by three faces. Faces on such an edge (or on an edge that two
    faces traverse in the same direction) are detached completely; then every vertex is split into one
    copy per fan of faces that are connected through shared edges around it (bow-ties come apart).
    Returns (new faces, original vertex index of every new vertex).
    """
    face_count = len(faces)
    corner = np.arange(3 * face_count).reshape(face_count, 3)
    start, end = faces, np.roll(faces, -1, axis=1)              # half-edge k runs corner k -> k+1
    start_corner, end_corner = corner, np.roll(corner, -1, axis=1)
    lo, hi = np.minimum(start, end).ravel(), np.maximum(start, end).ravel()
    edge_key = lo * (int(faces.max()) + 1) + hi
    order = np.argsort(edge_key, kind="stable")
    sorted_key = edge_key[order]
    first = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    group = np.cumsum(first) - 1
    group_size = np.bincount(group)[group]                      # faces on each half-edge's edge

    # Edges with exactly two half-edges pair consecutive entries of the sorted order.
    pair_at = np.flatnonzero(first[:-1] & (group_size[:-1] == 2))
    h1, h2 = order[pair_at], order[pair_at + 1]
    start_flat = start.ravel()
    opposite = start_flat[h1] != start_flat[h2]
    bad_face = np.zeros(face_count, dtype=bool)
    bad_face[order[group_size > 2] // 3] = True
    bad_face[h1[~opposite] // 3] = True
    bad_face[h2[~opposite] // 3] = True
    keep = opposite & ~bad_face[h1 // 3] & ~bad_face[h2 // 3]
    h1, h2 = h1[keep], h2[keep]

    # The start corner of one half-edge is the same vertex as the end corner of its twin.
    sc, ec = start_corner.ravel(), end_corner.ravel()
    rows = np.r_[sc[h1], ec[h1]]
    cols = np.r_[ec[h2], sc[h2]]
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(3 * face_count,) * 2)
    _, label = connected_components(graph, directed=False)
    source_vertex = np.empty(label.max() + 1, dtype=np.int64)
    source_vertex[label] = faces.ravel()
    return label.reshape(face_count, 3).astype(np.int64), source_vertex


class _UvatlasFailed(RuntimeError):
    pass


def unwrapper() -> str:
    """"xatlas" when the package is installed (deterministic), else open3d's "uvatlas".
    MESHSTYLE_UNWRAPPER=uvatlas forces uvatlas (comparisons, tests of the fallback)."""
    if os.environ.get("MESHSTYLE_UNWRAPPER") == "uvatlas":
        return "uvatlas"
    return "xatlas" if importlib.util.find_spec("xatlas") is not None else "uvatlas"


def _unwrap_in_child(method: str, vertices: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    partitions = max(1, round(len(faces) / FACES_PER_PARTITION))
    with tempfile.TemporaryDirectory(prefix="meshstyle-unwrap-") as folder:
        request, answer, errors = (Path(folder) / name for name in ("mesh.npz", "uv.npy", "stderr.txt"))
        np.savez(request, vertices=vertices.astype(np.float32), faces=faces.astype(np.int64), method=method,
                 size=size, gutter=GUTTER_TEXELS, max_stretch=MAX_STRETCH, partitions=partitions)
        with open(errors, "w") as error_stream:
            child = subprocess.Popen([sys.executable, "-m", "meshstyle.atlas.unwrap", str(request), str(answer)],
                                     stdout=subprocess.DEVNULL, stderr=error_stream)
            try:
                _wait_with_progress(child, f"{method}, {len(faces)} faces")
            except BaseException:  # Ctrl-C / SIGTERM: no orphaned unwrapper left running
                child.kill()
                child.wait()
                raise
        if child.returncode != 0 or not answer.exists():
            raise _UvatlasFailed(_failure_reason(errors.read_text(errors="replace"), child.returncode))
        uv = np.load(answer)
    if uv.shape != (len(faces), 3, 2) or not np.isfinite(uv).all():
        raise _UvatlasFailed("it returned invalid coordinates")
    return uv.astype(np.float32)


def _wait_with_progress(child: subprocess.Popen, description: str) -> None:
    """Wait for the child, counting seconds on a bar; kill it at UVATLAS_TIMEOUT_S."""
    started = time.perf_counter()
    with progress(desc=description, total=int(UVATLAS_TIMEOUT_S), unit="s") as bar:
        while True:
            try:
                child.wait(timeout=0.2)
                return
            except subprocess.TimeoutExpired:
                pass
            elapsed = int(time.perf_counter() - started)
            if elapsed >= UVATLAS_TIMEOUT_S:
                child.kill()
                child.wait()
                raise _UvatlasFailed(f"no result within {UVATLAS_TIMEOUT_S:.0f} s")
            if elapsed > bar.n:
                bar.update(elapsed - bar.n)


def _failure_reason(stderr: str, returncode: int) -> str:
    """The child's last error line without terminal colours, or how it died."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if "Error" in line]
    if errors or lines:
        return (errors or lines)[-1][:300]
    return f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"


def _unwrap_child_main(request: str, answer: str) -> None:
    """Runs in the child process: read the mesh, unwrap it, save the per-corner UVs."""
    job = np.load(request)
    if str(job["method"]) == "xatlas":
        uv = _xatlas_uv(job["vertices"], job["faces"], int(job["size"]), float(job["gutter"]))
    else:
        uv = _uvatlas_uv(job)
    with atomic_path(answer) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, uv)


def _xatlas_uv(vertices: np.ndarray, faces: np.ndarray, size: int, gutter: float) -> np.ndarray:
    """Per-corner UVs from xatlas, packed into one size x size atlas with `gutter` texels of padding.

    xatlas sizes the atlas itself: `resolution` is approximate and not always square (564x683 texels
    for 512 on an icosphere). Its texel coordinates are mapped into the square texture at one scale,
    so the gutter shrinks where it overshoots (2.25 texels there). Giving xatlas the texel density
    that fits exactly costs a second chart computation and used fewer texels on a bumpy sphere
    (41.8% against 44.5%), so it is not done.

    A mesh above FACES_PER_PARTITION faces goes in as several meshes, compact spatial parts
    (`spatial_parts`), charted independently and packed into the one atlas together: xatlas's chart
    growing is superlinear in mesh size and runs one mesh per thread, so redkitchen's 200k faces took
    102 s whole and 14 s in 16 parts (2 cores), with as many charts (5,322 against 4,784: a scan's
    noise makes thousands anyway) and as many texels used (43% against 45%). A part boundary is one
    more chart boundary, which the seam fill carries strokes across like any other.
    """
    import xatlas

    parts = spatial_parts(vertices, faces, FACES_PER_PARTITION)
    atlas = xatlas.Atlas()
    for part in parts:
        used, corners = np.unique(faces[part], return_inverse=True)
        atlas.add_mesh(vertices[used].astype(np.float32), corners.reshape(-1, 3).astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = size
    pack.padding = int(math.ceil(gutter))
    atlas.generate(xatlas.ChartOptions(), pack)
    if atlas.atlas_count != 1:
        raise RuntimeError(f"xatlas Error: charts spread over {atlas.atlas_count} atlases")
    width, height = atlas.width, atlas.height
    scale = min(1.0, size / max(width, height))
    uv = np.empty((len(faces), 3, 2), np.float32)
    for index, part in enumerate(parts):
        vmapping, indices, uvs = atlas[index]
        if len(indices) != len(part):
            raise RuntimeError(f"xatlas Error: {len(indices)} faces returned for {len(part)}")
        texels = uvs.astype(np.float64) * [width, height] * scale
        # xatlas counts rows downwards; v is upwards in meshstyle (a vertical flip, no mirroring of
        # charts relative to each other: all flip together).
        uv[part] = np.stack([texels[:, 0] / size, 1.0 - texels[:, 1] / size], axis=-1)[indices]
    return uv


def spatial_parts(vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> list[np.ndarray]:
    """Face indices split into ceil(faces / max_faces) compact parts of nearly equal size: the face
    centroids are cut along the longest side of their bounding box at the share that leaves each
    side its number of parts, recursively (a k-d split; a stable sort decides ties, so it is
    deterministic). One part, in order, when the mesh is small enough."""
    centroids = vertices[faces].mean(axis=1)
    pending = [(np.arange(len(faces)), max(1, math.ceil(len(faces) / max_faces)))]
    parts = []
    while pending:
        part, count = pending.pop()
        if count == 1:
            parts.append(part)
            continue
        points = centroids[part]
        axis = int(np.argmax(points.max(axis=0) - points.min(axis=0)))
        order = part[np.argsort(points[:, axis], kind="stable")]
        low = count // 2
        cut = len(order) * low // count
        pending += [(np.sort(order[cut:]), count - low), (np.sort(order[:cut]), low)]
    return parts


def _uvatlas_uv(job) -> np.ndarray:
    import open3d as o3d

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    mesh = o3d.t.geometry.TriangleMesh()
    mesh.vertex.positions = o3d.core.Tensor(job["vertices"])
    mesh.triangle.indices = o3d.core.Tensor(job["faces"])
    mesh.compute_uvatlas(size=int(job["size"]), gutter=float(job["gutter"]),
                         max_stretch=float(job["max_stretch"]), parallel_partitions=int(job["partitions"]))
    return mesh.triangle.texture_uvs.numpy()


def project_charts(vertices: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """Fast fallback unwrap: faces grouped by dominant normal axis and edge connectivity, projected
    onto that axis plane, and shelf-packed at one texel density with a gutter (per-corner UVs)."""
    corners = vertices[faces]
    normal = corner_cross(corners)
    axis = np.abs(normal).argmax(axis=1)
    facing = 2 * axis + (normal[np.arange(len(faces)), axis] > 0)
    chart = _charts_of(faces, facing)

    # Project along the dominant axis; swapping the two remaining axes for negative normals keeps
    # the charts unmirrored.
    u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
    flip = facing % 2 == 0
    u_axis, v_axis = np.where(flip, v_axis, u_axis), np.where(flip, u_axis, v_axis)
    flat = np.stack([_coordinate(corners, u_axis), _coordinate(corners, v_axis)], axis=-1)
    return pack_charts(flat, chart, size, GUTTER_TEXELS)


def _coordinate(corners: np.ndarray, axis_of_face: np.ndarray) -> np.ndarray:
    """(F,3) coordinate `axis_of_face[f]` of each corner of face f."""
    index = np.broadcast_to(axis_of_face[:, None, None], (len(corners), 3, 1))
    return np.take_along_axis(corners, index, axis=2)[..., 0]


def _charts_of(faces: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """Connected components of faces that share an edge and face the same axis direction."""
    face_count = len(faces)
    lo = np.minimum(faces, np.roll(faces, -1, axis=1)).ravel()
    hi = np.maximum(faces, np.roll(faces, -1, axis=1)).ravel()
    order = np.lexsort((hi, lo))
    same_edge = (lo[order][1:] == lo[order][:-1]) & (hi[order][1:] == hi[order][:-1])
    f1, f2 = order[:-1][same_edge] // 3, order[1:][same_edge] // 3
    joined = facing[f1] == facing[f2]
    graph = coo_matrix((np.ones(joined.sum(), dtype=np.int8), (f1[joined], f2[joined])), shape=(face_count,) * 2)
    return connected_components(graph, directed=False)[1]


def pack_charts(flat: np.ndarray, chart: np.ndarray, size: int, gutter: float) -> np.ndarray:
    """Shelf-pack 2-D charts (per-corner coordinates in metres) into the unit square.

    All charts get one scale (texels per metre), the largest at which the shelves fit; every chart
    keeps `gutter` texels of space on each side.
    """
    count = int(chart.max()) + 1
    lower = np.full((count, 2), np.inf)
    upper = np.full((count, 2), -np.inf)
    np.minimum.at(lower, np.repeat(chart, 3), flat.reshape(-1, 2))
    np.maximum.at(upper, np.repeat(chart, 3), flat.reshape(-1, 2))
    extent = upper - lower
    # Lying charts (wider than tall) make flatter shelves.
    rotate = extent[:, 1] > extent[:, 0]
    extent = np.where(rotate[:, None], extent[:, ::-1], extent)
    order = np.argsort(-extent[:, 1], kind="stable")

    # Tiny atlases cannot afford the full gutter around many charts: narrower gutters before failing.
    for margin in (gutter, gutter / 2, gutter / 4, 0.0):
        packing = _largest_packing(extent[order], size, margin)
        if packing is not None:
            break
    else:
        raise ValueError(f"{count} charts do not fit a {size}x{size} atlas")
    scale, placed = packing
    offset = np.empty((count, 2))
    offset[order] = placed

    local = flat - lower[chart][:, None, :]
    local = np.where(rotate[chart][:, None, None], local[..., ::-1], local)
    texels = offset[chart][:, None, :] + margin + local * scale
    return (texels / size).astype(np.float32)


def _largest_packing(extent: np.ndarray, size: int, gutter: float) -> tuple[float, np.ndarray] | None:
    """The largest common scale (bisection) at which shelf packing fits, with the boxes' corners."""
    low, high = 0.0, size / max(float(extent.max()), 1e-12)
    best = None
    for _ in range(40):
        scale = (low + high) / 2
        placed = _shelf_pack(extent * scale + 2 * gutter, size)
        if placed is None:
            high = scale
        else:
            low, best = scale, (scale, placed)
        if best is not None and high - low < 1e-4 * high:
            break
    return best


def _shelf_pack(boxes: np.ndarray, size: float) -> np.ndarray | None:
    """Lower-left corners of boxes (sorted by decreasing height) placed shelf by shelf, or None."""
    placed = np.empty_like(boxes)
    cumulative = np.r_[0.0, np.cumsum(boxes[:, 0])]
    first, shelf_y = 0, 0.0
    while first < len(boxes):
        if boxes[first, 0] > size:
            return None
        last = int(np.searchsorted(cumulative, cumulative[first] + size, side="right")) - 1
        last = max(last, first + 1)
        placed[first:last, 0] = cumulative[first:last] - cumulative[first]
        placed[first:last, 1] = shelf_y
        shelf_y += boxes[first, 1]
        if shelf_y > size:
            return None
        first = last
    return placed


def _measured(scene: Scene, uv: np.ndarray, size: int, method: str, started: float) -> Atlas:
    uv = np.asarray(uv, dtype=np.float32)
    corners = scene.vertices[scene.faces]
    surface = 0.5 * np.linalg.norm(corner_cross(corners), axis=1)
    uv_area = _uv_areas(uv.astype(np.float64))
    face_id, _ = rasterize_atlas(uv, size)
    return Atlas(uv=uv, size=size, charts=count_charts(uv),
                 utilisation=float((face_id >= 0).mean()),
                 texels_per_metre=math.sqrt(uv_area.sum() * size * size / max(surface.sum(), 1e-30)),
                 method=method, seconds=time.perf_counter() - started)


def count_charts(uv: np.ndarray) -> int:
    """UV islands: faces joined through shared UV corners (positions quantised to 1e-6)."""
    if len(uv) == 0:
        return 0
    area = _uv_areas(uv.astype(np.float64))
    live = area > 0
    quantised = np.round(uv[live].reshape(-1, 2).astype(np.float64) * 1e6).astype(np.int64)
    _, point_id = np.unique(quantised[:, 0] * 4_000_003 + quantised[:, 1], return_inverse=True)
    point_id = point_id.reshape(-1, 3)
    face = np.repeat(np.arange(len(point_id)), 3)
    # Faces and UV points form a bipartite graph; its components are the islands.
    nodes = len(point_id) + point_id.max() + 1
    graph = coo_matrix((np.ones(len(face), dtype=np.int8), (face, len(point_id) + point_id.ravel())),
                       shape=(nodes, nodes))
    _, label = connected_components(graph, directed=False)
    return int(len(np.unique(label[: len(point_id)])))


def _uv_areas(uv: np.ndarray) -> np.ndarray:
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    return 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def _collapsed_share(uv: np.ndarray) -> float:
    """Share of faces whose UV triangle has (almost) no area."""
    return float((_uv_areas(uv) < 1e-12).mean()) if len(uv) else 0.0


def _overlap_share(uv: np.ndarray, size: int) -> float:
    """Share of covered texels claimed by more than one face (mirrored or stacked UV islands)."""
    claims = np.zeros(size * size, dtype=np.int64)
    for rows, cols, _, _ in _texel_hits(uv, size):
        claims += np.bincount(rows * size + cols, minlength=size * size)
    hits = int(claims.sum())
    return 1.0 - np.count_nonzero(claims) / hits if hits else 0.0


def _read_cached(path: Path, faces: int, size: int) -> Atlas | None:
    """The cached atlas, checked against the mesh it is for: a damaged or foreign entry (wrong
    face count, coordinates outside [0,1] or not finite) is removed and recomputed, never used."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            fields = {name: stored[name] for name in stored.files}
        atlas = Atlas(uv=fields["uv"].astype(np.float32), size=int(fields["size"]), charts=int(fields["charts"]),
                      utilisation=float(fields["utilisation"]), texels_per_metre=float(fields["texels_per_metre"]),
                      method=str(fields["method"]), seconds=0.0, cached=True)
        problem = None
        if atlas.uv.shape != (faces, 3, 2):
            problem = f"{atlas.uv.shape[0] if atlas.uv.ndim else 0} faces instead of {faces}"
        elif atlas.size != size:
            problem = f"size {atlas.size} instead of {size}"
        elif not np.isfinite(atlas.uv).all() or atlas.uv.min(initial=0) < -1e-4 or atlas.uv.max(initial=0) > 1 + 1e-4:
            problem = "coordinates outside [0,1]"
        if problem is None:
            return atlas
    except Exception as exc:  # a damaged cache entry is recomputed, never trusted
        problem = f"unreadable: {type(exc).__name__}"
    warn(f"ignoring a bad atlas cache entry {path.name} ({problem})")
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def _write_cached(path: Path, atlas: Atlas) -> None:
    fields = {name: value for name, value in asdict(atlas).items() if name not in ("seconds", "cached")}
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **fields)
    except OSError as exc:  # a read-only or full cache only costs time
        cache_failed(exc)


# ----------------------------------------------------------------------------------------------
# Rasterizing and baking


def rasterize_atlas(uv: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which face, and where in it, each texel centre lies: face_id (size,size) int64 (-1 = empty)
    and barycentric weights of the face's three corners, bary (size,size,3) float32."""
    face_id = np.full(size * size, -1, dtype=np.int64)
    bary = np.zeros((size * size, 3), dtype=np.float32)
    for rows, cols, face, weights in _texel_hits(uv, size):
        texel = rows * size + cols
        face_id[texel] = face
        bary[texel] = weights
    return face_id.reshape(size, size), bary.reshape(size, size, 3)


def _texel_hits(uv: np.ndarray, size: int):
    """Yield (rows, cols, face, bary) of texel centres inside UV triangles, chunk by chunk.

    Every face enumerates the texel centres of its bounding box; the boxes of all faces are laid end
    to end in one index space that is walked in fixed-size chunks, so one huge triangle costs no more
    memory than many small ones.
    """
    uv = np.asarray(uv, dtype=np.float64)
    x = uv[..., 0] * size - 0.5                       # texel-centre coordinates: centre of col i at x = i
    y = (1.0 - uv[..., 1]) * size - 0.5
    x_min = np.clip(np.ceil(np.nan_to_num(x.min(axis=1), nan=size)), 0, size)
    x_max = np.clip(np.floor(np.nan_to_num(x.max(axis=1), nan=-1)), -1, size - 1)
    y_min = np.clip(np.ceil(np.nan_to_num(y.min(axis=1), nan=size)), 0, size)
    y_max = np.clip(np.floor(np.nan_to_num(y.max(axis=1), nan=-1)), -1, size - 1)
    width = np.maximum(x_max - x_min + 1, 0).astype(np.int64)
    height = np.maximum(y_max - y_min + 1, 0).astype(np.int64)
    e1x, e1y = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
    e2x, e2y = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
    det = e1x * e2y - e2x * e1y
    usable = np.abs(det) > 1e-12
    candidates = np.where(usable, width * height, 0)
    end = np.cumsum(candidates)
    total = int(end[-1]) if len(end) else 0
    begin = end - candidates
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_det = np.where(usable, 1.0 / det, 0.0)
    x_min, y_min = x_min.astype(np.int64), y_min.astype(np.int64)
    for chunk_start in range(0, total, _TEXELS_PER_CHUNK):
        chunk_end = min(chunk_start + _TEXELS_PER_CHUNK, total)
        # Faces whose boxes overlap this chunk, each repeated once per candidate texel it has here.
        first, last = np.searchsorted(end, [chunk_start, chunk_end - 1], side="right")
        span = np.minimum(end[first:last + 1], chunk_end) - np.maximum(begin[first:last + 1], chunk_start)
        face = np.repeat(np.arange(first, last + 1), span)
        index = np.arange(chunk_start, chunk_end, dtype=np.int64)
        dy, dx = np.divmod(index - begin[face], width[face])
        col, row = x_min[face] + dx, y_min[face] + dy
        px, py = col - x[face, 0], row - y[face, 0]
        b1 = (px * e2y[face] - e2x[face] * py) * inv_det[face]
        b2 = (e1x[face] * py - px * e1y[face]) * inv_det[face]
        b0 = 1.0 - b1 - b2
        inside = (b0 >= -1e-7) & (b1 >= -1e-7) & (b2 >= -1e-7)
        weights = np.stack([b0[inside], b1[inside], b2[inside]], axis=1).clip(0, 1).astype(np.float32)
        yield row[inside], col[inside], face[inside], weights


def bake_texture(scene: Scene, atlas: Atlas, size: int) -> np.ndarray:
    """The mesh's own appearance painted into the atlas (H,W,3) float32, gutters filled.

    Source order as in `Appearance`: textures (resampled through the source UVs), vertex colours
    (interpolated), else neutral grey. Texels arrive face by face, so the per-face colour lookups
    walk memory in order (row-major texel order made them random gathers, 5x slower).
    """
    appearance = scene.appearance
    corner_colours = None if appearance.vertex_colors is None else appearance.vertex_colors[scene.faces]
    texture = np.full((size * size, 3), NEUTRAL_GREY, dtype=np.float32)
    covered = np.zeros(size * size, dtype=bool)
    for rows, cols, face, bary in _texel_hits(atlas.uv, size):
        texel = rows * size + cols
        texture[texel] = _colour_at(appearance, corner_colours, face, bary)
        covered[texel] = True
    texture, covered = texture.reshape(size, size, 3), covered.reshape(size, size)
    _fill_gutter_in_place(texture, covered, int(math.ceil(GUTTER_TEXELS)) + 1)
    return texture


def _colour_at(appearance: Appearance, corner_colours: np.ndarray | None, face: np.ndarray,
               bary: np.ndarray) -> np.ndarray:
    """Colour (N,3) of the mesh's own appearance at points given by face and barycentric weights;
    `corner_colours` (F,3,3) are the vertex colours at each face's corners."""
    if corner_colours is not None:
        colour = np.matmul(bary[:, None, :], corner_colours[face])[:, 0]
    else:
        colour = np.full((len(face), 3), NEUTRAL_GREY, dtype=np.float32)
    if appearance.uv is not None and appearance.textures:
        source_uv = np.matmul(bary[:, None, :], appearance.uv[face])[:, 0]
        which = (np.zeros(len(face), dtype=np.int64) if appearance.face_texture is None
                 else appearance.face_texture[face])
        for index, image in enumerate(appearance.textures):
            here = which == index
            if here.any():
                colour[here] = sample_wrapped(image, source_uv[here])
    return colour.clip(0.0, 1.0)


def sample_wrapped(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of (N,2) OBJ-convention UVs in an (H,W,3) image.

    UVs outside [0,1] repeat (the glTF default, tiling textures); inside, lookups clamp at the
    image border, so an island touching the edge does not blend in the opposite edge's colours.
    """
    height, width = image.shape[:2]
    outside = (uv < 0) | (uv > 1)
    uv = np.where(outside, uv - np.floor(uv), uv)
    x = (uv[:, 0] * width - 0.5).clip(0, width - 1)
    y = ((1.0 - uv[:, 1]) * height - 0.5).clip(0, height - 1)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def fill_gutter(texture: np.ndarray, covered_mask: np.ndarray, width: int) -> np.ndarray:
    """Fill every empty texel, so bilinear and mip-mapped lookups never pull in unpainted ones.

    The `width` texels around each island copy their nearest painted texel (dilation), so bilinear
    lookups at island borders see the island's own colours; the rest is filled by pull-push (means of
    coarser levels), so coarse mip levels hold plausible colours instead of black. Pull-push runs on
    a grid of at most COARSE_FILL_SIDE texels a side: the full-resolution pyramid cost 8 s at 4096^2.
    """
    result = np.array(texture, dtype=np.float32)
    _fill_gutter_in_place(result, np.array(covered_mask, dtype=bool), width)
    return result


def _fill_gutter_in_place(result: np.ndarray, filled: np.ndarray, width: int) -> None:
    """fill_gutter on arrays it may change (`filled` gains the gutter band)."""
    if not filled.any():
        result[:] = NEUTRAL_GREY
        return
    if width > 0 and not filled.all():
        # Chessboard nearest painted texel: one C pass, 1.2 s at 4096^2 (8-neighbour mean rings cost
        # 1.4 s per ring at 2048^2).
        distance, (near_row, near_col) = distance_transform_cdt(~filled, metric="chessboard", return_indices=True)
        band = ~filled & (distance <= width)
        result[band] = result[near_row[band], near_col[band]]
        filled |= band
    if not filled.all():
        _fill_from_coarse(result, filled)


def _fill_from_coarse(image: np.ndarray, filled: np.ndarray) -> None:
    """Fill `image` where not `filled` from a pull-push of its block means on a coarse grid."""
    height, width = filled.shape
    block = 1
    while max(height, width) > COARSE_FILL_SIDE * block:
        block *= 2
    colour = np.where(filled[..., None], image, np.float32(0))   # empty texels may hold NaN
    weight = filled.astype(np.float32)
    if height % block or width % block:
        pad = ((0, -height % block), (0, -width % block))
        colour, weight = np.pad(colour, pad + ((0, 0),)), np.pad(weight, pad)
    rows, cols = colour.shape[0] // block, colour.shape[1] // block
    colour_sum = colour.reshape(rows, block, cols, block, -1).sum(axis=(1, 3))
    weight_sum = weight.reshape(rows, block, cols, block).sum(axis=(1, 3))
    painted = weight_sum > 0
    coarse = np.zeros_like(colour_sum)
    coarse[painted] = colour_sum[painted] / weight_sum[painted][:, None]
    _pull_push(coarse, painted)
    empty_row, empty_col = np.nonzero(~filled)
    image[empty_row, empty_col] = coarse[empty_row // block, empty_col // block]


def _pull_push(image: np.ndarray, filled: np.ndarray) -> None:
    """Fill `image` where not `filled` with the mean colour of the nearest coarser level that has one."""
    sums = [np.where(filled[..., None], image, np.float32(0))]   # empty texels may hold NaN
    weights = [filled.astype(np.float32)]
    while sums[-1].shape[0] > 1 or sums[-1].shape[1] > 1:
        colour, weight = sums[-1], weights[-1]
        if colour.shape[0] % 2 or colour.shape[1] % 2:
            pad = ((0, colour.shape[0] % 2), (0, colour.shape[1] % 2))
            colour, weight = np.pad(colour, pad + ((0, 0),)), np.pad(weight, pad)
        half_rows, half_cols = colour.shape[0] // 2, colour.shape[1] // 2
        sums.append(colour.reshape(half_rows, 2, half_cols, 2, -1).sum(axis=(1, 3)))
        weights.append(weight.reshape(half_rows, 2, half_cols, 2).sum(axis=(1, 3)))
    mean = sums[-1] / weights[-1][..., None]
    for colour, weight in zip(reversed(sums[1:-1]), reversed(weights[1:-1])):
        painted = weight > 0
        finer = np.empty_like(colour)
        finer[painted] = colour[painted] / weight[painted][:, None]
        empty_row, empty_col = np.nonzero(~painted)
        finer[empty_row, empty_col] = mean[empty_row // 2, empty_col // 2]
        mean = finer
    # Only the empty texels of the full-resolution image need a value from the level above.
    empty_row, empty_col = np.nonzero(~filled)
    image[empty_row, empty_col] = mean[empty_row // 2, empty_col // 2]


if __name__ == "__main__":
    # The unwrapper's child process (see _unwrap_in_child).
    _unwrap_child_main(sys.argv[1], sys.argv[2])
    os._exit(0)  # skip interpreter teardown: open3d's threads can hang it
