"""Ray-cast rasterization: per-pixel fragments of a mesh seen by a camera (open3d / Embree, CPU).

A view is rasterized in two steps that read like the data flow:

1. `Rasterizer.cast` shoots one ray per pixel and keeps the raw hits (`RayHits`: face id, the face's
   barycentric (u, v) and the distance along the ray). Rays are built with camera-space z = 1, so
   the distance along a ray *is* the pixel's z-depth.
2. `shade` turns the hits into `Fragments` (UV, normal facing the camera, view angle, texel
   footprint) with vectorised numpy over the hit pixels only.

Only the raw hits go to the disk cache (`view_pyramids`): everything else is a pure function of the
hits, the mesh and the camera, so a cache hit runs the very same `shade` and returns bit-identical
fragments while storing 16 bytes per pixel instead of ~50.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .cache import cache_dir as cache_folder
from .cache import fingerprint
from .cameras import Camera
from .fragments import Fragments, ViewPyramid
from .io import atomic_path
from .progress import progress

# Grazing views: below this |cos| the footprint stops growing (it would be infinite at 90 degrees);
# at 0.02 the mip level is already ~5.6 levels coarser than face-on, i.e. fully blurred.
MIN_FOOTPRINT_COS = 0.02
# Cameras are cast together up to this many rays per call.
BATCH_RAYS = 2**18
# Bumped whenever what is stored, or how fragments are derived from it, changes.
CACHE_FORMAT = "hits-v1"


@dataclass
class RayHits:
    """What one cast of N rays hit, in open3d's terms (flat arrays over the rays)."""
    face_id: np.ndarray    # (N,) int32, -1 where the ray hit nothing (open3d's uint32 ids, viewed)
    bary_uv: np.ndarray    # (N,2) float32 (u, v): point = (1-u-v)*v0 + u*v1 + v*v2
    distance: np.ndarray   # (N,) float32 ray parameter of the hit (z-depth for camera rays); inf on a miss

    @property
    def hit(self) -> np.ndarray:
        return self.face_id >= 0


class Rasterizer:
    """Casts camera rays against one triangle mesh; the Embree scene is built on first use.

    `uv` is the atlas (F,3,2) in OBJ convention; without one, fragments have zero UVs and the
    footprint is in metres of surface per pixel instead of texture units.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray | None = None):
        self.vertices = np.ascontiguousarray(vertices, dtype=np.float32)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V,3), got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise ValueError(f"faces must be a non-empty (F,3), got {self.faces.shape}")
        if uv is not None:
            uv = np.ascontiguousarray(uv, dtype=np.float32)
            if uv.shape != (len(self.faces), 3, 2):
                raise ValueError(f"uv must be (F,3,2) = {(len(self.faces), 3, 2)}, got {uv.shape}")
        self.uv = uv
        corners = self.vertices[self.faces]                            # (F,3,3)
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        double_area = np.linalg.norm(cross, axis=1)
        self.face_normal = (cross / np.maximum(double_area, 1e-20)[:, None]).astype(np.float32)
        self.face_normal_columns = np.ascontiguousarray(self.face_normal.T)   # (3,F) for 1-D gathers
        self.texel_density = _texel_density(double_area, uv)
        # (corner, u|v, F): contiguous rows, so per-pixel gathers are fast 1-D takes.
        self.uv_columns = None if uv is None else np.ascontiguousarray(uv.transpose(1, 2, 0))
        self._scene = None
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """Content digest of the geometry and atlas: the cache key's mesh part."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.vertices, self.faces, self.uv)
        return self._fingerprint

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> RayHits:
        """Cast rays (N,3) origins x (N,3) directions; directions need not be unit length."""
        rays = np.empty((len(directions), 6), dtype=np.float32)
        rays[:, :3] = origins
        rays[:, 3:] = directions
        return self._cast_rays(rays)

    def _cast_rays(self, rays: np.ndarray) -> RayHits:
        import open3d.core as o3c

        result = self._embree().cast_rays(o3c.Tensor.from_numpy(rays))
        # open3d's miss id is 2^32-1: viewing the uint32 ids as int32 makes it -1 without a copy
        # (meshes stay far below 2^31 faces).
        return RayHits(face_id=result["primitive_ids"].numpy().view(np.int32),
                       bary_uv=result["primitive_uvs"].numpy(), distance=result["t_hit"].numpy())

    def distance(self, points: np.ndarray) -> np.ndarray:
        """(N,) unsigned distance from each point to the nearest surface, in metres."""
        import open3d.core as o3c

        query = o3c.Tensor.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
        return self._embree().compute_distance(query).numpy()

    def __call__(self, camera: Camera) -> Fragments:
        return self.render_many([camera])[0]

    def render_many(self, cameras: Sequence[Camera]) -> list[Fragments]:
        """Fragments of several cameras; small images are cast together in one call."""
        return [shade(self, camera, hits) for camera, hits in zip(cameras, self.cast_cameras(cameras))]

    def cast_cameras(self, cameras: Sequence[Camera]) -> list[RayHits]:
        """Each camera's pixel rays cast, grouping cameras up to BATCH_RAYS rays per open3d call:
        tiny renders share one thread start-up, big ones stay apart (one 6 M-ray call measured
        slower than twenty 300 k-ray calls, from memory traffic)."""
        hits: list[RayHits] = []
        for group in _batches(cameras):
            bounds = np.cumsum([0] + [camera.width * camera.height for camera in group])
            rays = np.empty((bounds[-1], 6), dtype=np.float32)
            for camera, start, stop in zip(group, bounds[:-1], bounds[1:]):
                write_camera_rays(camera, rays[start:stop])
            batch = self._cast_rays(rays)
            hits.extend(_slice(batch, start, stop) for start, stop in zip(bounds[:-1], bounds[1:]))
        return hits

    def pyramid(self, camera: Camera, heights: Sequence[int]) -> ViewPyramid:
        """The camera rasterized at each of `heights` (ascending: coarsest first), field of view kept."""
        levels = level_cameras(camera, heights)
        return ViewPyramid(camera=levels[0], levels=self.render_many(levels))

    def _embree(self):
        if self._scene is None:
            import open3d.core as o3c
            import open3d.t.geometry as o3dt

            scene = o3dt.RaycastingScene()
            scene.add_triangles(o3c.Tensor.from_numpy(self.vertices),
                                o3c.Tensor.from_numpy(self.faces.astype(np.uint32)))
            self._scene = scene
        return self._scene


def _batches(cameras: Sequence[Camera]) -> list[list[Camera]]:
    groups: list[list[Camera]] = []
    rays = BATCH_RAYS
    for camera in cameras:
        if rays + camera.width * camera.height > BATCH_RAYS:
            groups.append([])
            rays = 0
        groups[-1].append(camera)
        rays += camera.width * camera.height
    return groups


def level_cameras(camera: Camera, heights: Sequence[int]) -> list[Camera]:
    heights = [int(h) for h in heights]
    if not heights or any(h < 1 for h in heights) or heights != sorted(heights):
        raise ValueError(f"pyramid heights must be positive and ascending, got {heights}")
    return [camera.scaled(h) for h in heights]


def camera_rays(camera: Camera) -> np.ndarray:
    """(H*W,3) world directions through pixel centres, with camera-space z = 1 (so t = z-depth)."""
    rays = np.empty((camera.width * camera.height, 6), dtype=np.float32)
    write_camera_rays(camera, rays)
    return rays[:, 3:]


def write_camera_rays(camera: Camera, rays: np.ndarray) -> None:
    """Fill (H*W,6) rays in place: origin = camera centre, direction = R (x, y, 1)."""
    x, y = image_coordinates(camera)
    rotation = camera.cam_to_world[:3, :3].astype(np.float32)
    rays[:, :3] = camera.center.astype(np.float32)
    for axis in range(3):
        direction = rays[:, 3 + axis]
        np.multiply(x, rotation[axis, 0], out=direction)
        direction += y * rotation[axis, 1]
        direction += rotation[axis, 2]


def shade(rasterizer: Rasterizer, camera: Camera, hits: RayHits) -> Fragments:
    """Fragments of one view from its ray hits (row-major pixels, H*W of them).

    Works on 1-D columns over the hit pixels, gathers with np.take and keeps few arrays alive at
    once: numpy's 2-D fancy indexing and einsum were each slower than the whole ray cast, and
    fresh memory is expensive here (page faults in the VM cost as much as the arithmetic).
    """
    image = _ImageWriter(hits.face_id >= 0, (camera.height, camera.width))
    hit = image.hit
    face = hits.face_id[hit]
    u, v = hits.bary_uv[hit, 0], hits.bary_uv[hit, 1]
    w = 1.0 - u - v
    depth = hits.distance[hit]
    world_normal = [np.take(column, face) for column in rasterizer.face_normal_columns]
    facing, cos_angle, footprint = _view_geometry(camera, hit, world_normal, depth)
    footprint *= np.take(rasterizer.texel_density, face)
    # Turn normals towards the camera: the ray and a facing normal point against each other.
    np.copysign(np.float32(1.0), facing, out=facing)
    for column in world_normal:
        column *= facing
        np.negative(column, out=column)
    return Fragments(
        uv=image.field("uv", _interpolate_uv(rasterizer.uv_columns, face, w, u, v)),
        face_id=image.face_id(face),
        bary=image.field("bary", [w, u, v]),
        depth=image.field("depth", [depth]),
        normal=image.field("normal", world_normal),
        cos_angle=image.field("cos_angle", [cos_angle]),
        footprint=image.field("footprint", [footprint]),
        mask=torch.from_numpy(image.covered.reshape(image.shape)),
    )


def _view_geometry(camera: Camera, hit, world_normal: list[np.ndarray], depth: np.ndarray):
    """(n . ray, |cos| of the view angle, footprint in metres) of the hit pixels."""
    x, y = image_coordinates(camera)
    x, y = x[hit], y[hit]
    ray_length = x * x
    ray_length += y * y
    ray_length += 1.0
    np.sqrt(ray_length, out=ray_length)
    # Camera-space normal n_c = R^T n as columns: a (P,3) @ (3,3) matmul through a multi-threaded
    # BLAS was 50x slower than these products on a busy machine.
    rotation = camera.cam_to_world[:3, :3].astype(np.float32)
    normal_x, normal_y, normal_z = (world_normal[0] * rotation[0, k] + world_normal[1] * rotation[1, k]
                                    + world_normal[2] * rotation[2, k] for k in range(3))
    facing = normal_x * x
    facing += normal_y * y
    facing += normal_z
    del normal_z
    cos_angle = np.abs(facing)
    cos_angle /= ray_length
    np.minimum(cos_angle, 1.0, out=cos_angle)
    footprint = _pixel_extent(x, y, ray_length, normal_x, normal_y, facing, cos_angle, depth,
                              np.float32(camera.K[0, 0]), np.float32(camera.K[1, 1]))
    return facing, cos_angle, footprint


def _interpolate_uv(uv_columns: np.ndarray | None, face: np.ndarray, w, u, v) -> list[np.ndarray]:
    """Per-pixel atlas UV, w*uv0 + u*uv1 + v*uv2 of the hit face (zeros without an atlas)."""
    if uv_columns is None:
        return [np.zeros_like(u), np.zeros_like(u)]
    channels = []
    for axis in range(2):
        value = np.take(uv_columns[0, axis], face)
        value *= w
        value += u * np.take(uv_columns[1, axis], face)
        value += v * np.take(uv_columns[2, axis], face)
        channels.append(value)
    return channels


# Float channels of the fragments, in the order they sit in one shared buffer.
FLOAT_FIELDS = {"uv": 2, "bary": 3, "normal": 3, "depth": 1, "cos_angle": 1, "footprint": 1}


class _ImageWriter:
    """Scatters per-hit columns into full images (zero elsewhere) and hands them to torch.

    All float fields of a view are contiguous slices of one buffer: a single multi-megabyte
    allocation gets huge pages and, once freed, raises glibc's trim threshold so that later
    temporaries reuse memory instead of faulting fresh pages (measured: 13 fresh 1.2 MB arrays
    cost 10 ms in this VM, one 16 MB array 0.3 ms). When every pixel hit (inside a room) `hit` is
    a slice, so gathers are views and nothing is scattered.
    """

    def __init__(self, covered: np.ndarray, shape: tuple[int, int]):
        self.covered, self.shape = covered, shape
        self.hit = slice(None) if covered.all() else np.flatnonzero(covered)
        # Every element is written when every pixel hit (inside a room); zero-filling 13 MB per
        # 640x480 view then cost as much as the fragment math, so only partial views pay for it.
        self.buffer = np.empty(covered.size * sum(FLOAT_FIELDS.values()), dtype=np.float32)
        if not isinstance(self.hit, slice):
            self.buffer.fill(0.0)
        self.offsets, start = {}, 0
        for name, channels in FLOAT_FIELDS.items():
            self.offsets[name] = start
            start += covered.size * channels

    def field(self, name: str, columns: list[np.ndarray]) -> torch.Tensor:
        channels = FLOAT_FIELDS[name]
        start = self.offsets[name]
        pixels = self.buffer[start:start + self.covered.size * channels].reshape(-1, channels)
        for channel, values in enumerate(columns):
            pixels[:, channel][self.hit] = values
        return torch.from_numpy(pixels.reshape(self.shape + ((channels,) if channels > 1 else ())))

    def face_id(self, face: np.ndarray) -> torch.Tensor:
        full = np.full(self.covered.size, -1, dtype=np.int64)
        full[self.hit] = face
        return torch.from_numpy(full.reshape(self.shape))


def _pixel_extent(x, y, ray_length, normal_x, normal_y, facing, cos_angle, depth, fx, fy) -> np.ndarray:
    """World length of the longer axis of one pixel's footprint on the surface plane.

    The surface point seen through normalised image point r = (x, y, 1) is p = c r / (n.r); its
    derivatives per pixel step are d/f (e_x - r n_x/(n.r)) and d/f (e_y - r n_y/(n.r)). The largest
    singular value of that 3x2 Jacobian, in closed form, is d/f on a fronto-parallel plane and
    d/(f cos) at the image centre of a plane tilted by the view angle.
    """
    # |n.r| clamped at grazing angles; the sign is irrelevant (n_x/(n.r) is invariant to flipping n).
    # In-place arithmetic: fresh temporaries cost more than the products on 300k pixels.
    inv_facing = np.maximum(cos_angle, np.float32(MIN_FOOTPRINT_COS))
    inv_facing *= ray_length
    np.copysign(inv_facing, facing, out=inv_facing)
    np.reciprocal(inv_facing, out=inv_facing)
    a = normal_x * inv_facing
    b = normal_y * inv_facing
    r2 = ray_length * ray_length
    # Unit-depth Jacobian products J^T J, each scaled by 1/f per pixel axis.
    xx = a * a
    xx *= r2
    xx -= 2.0 * x * a
    xx += 1.0
    xx *= np.float32(1.0 / (fx * fx))
    yy = b * b
    yy *= r2
    yy -= 2.0 * y * b
    yy += 1.0
    yy *= np.float32(1.0 / (fy * fy))
    xy = a * b
    xy *= r2
    xy -= x * b
    xy -= y * a
    xy *= np.float32(1.0 / (fx * fy))
    gap = xx - yy
    gap *= 0.5
    gap *= gap
    xy *= xy
    gap += xy
    np.sqrt(gap, out=gap)
    xx += yy
    xx *= 0.5
    xx += gap                        # largest eigenvalue of J^T J at unit depth
    np.maximum(xx, 0.0, out=xx)
    np.sqrt(xx, out=xx)
    xx *= depth
    return xx


def _texel_density(double_area: np.ndarray, uv: np.ndarray | None) -> np.ndarray:
    """Per face sqrt(uv area / world area): texture units per metre (1 without an atlas)."""
    if uv is None:
        return np.ones(len(double_area), dtype=np.float32)
    edge1, edge2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    uv_double_area = np.abs(edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]).astype(np.float64)
    density = np.sqrt(uv_double_area / np.maximum(double_area.astype(np.float64), 1e-20))
    return np.where(double_area > 0, density, 0.0).astype(np.float32)


def image_coordinates(camera: Camera, cols: np.ndarray | None = None,
                      rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image coordinates x, y of pixel centres: the camera-space ray through a pixel is
    (x, y, 1). Without `cols`/`rows`: every pixel of the image, (H*W,) each, row-major."""
    K_inv = np.linalg.inv(camera.K).astype(np.float32)
    if cols is not None and rows is not None:
        cols, rows = np.asarray(cols, np.float32), np.asarray(rows, np.float32)
        return K_inv[0, 0] * cols + K_inv[0, 1] * rows + K_inv[0, 2], K_inv[1, 1] * rows + K_inv[1, 2]
    col_range = np.arange(camera.width, dtype=np.float32)
    row_range = np.arange(camera.height, dtype=np.float32)
    x = np.tile(K_inv[0, 0] * col_range + K_inv[0, 2], camera.height)
    y = np.repeat(K_inv[1, 1] * row_range + K_inv[1, 2], camera.width)
    if K_inv[0, 1] != 0:   # skewed pixels (rare); the footprint ignores skew
        x = x + K_inv[0, 1] * np.repeat(row_range, camera.width)
    return x, y


def _slice(hits: RayHits, start: int, stop: int) -> RayHits:
    return RayHits(face_id=hits.face_id[start:stop], bary_uv=hits.bary_uv[start:stop],
                   distance=hits.distance[start:stop])


# --- the on-disk cache of view pyramids --------------------------------------------------------

def view_pyramids(rasterizer: Rasterizer, cameras: Sequence[Camera], heights: Sequence[int],
                  cache_dir: str | Path | None = None) -> list[ViewPyramid]:
    """Every camera's pyramid, reusing the hits cached for the same mesh, atlas, camera and heights.

    A second style on the same scene skips ray casting (and building the Embree scene) entirely;
    a changed vertex, face, UV, pose, intrinsic or height changes the key and misses.
    """
    folder = cache_folder("fragments", cache_dir)
    pyramids = []
    for camera in progress(cameras, desc="rasterize views", unit="view"):
        levels = level_cameras(camera, heights)
        path = folder / f"{view_key(rasterizer, camera, levels)}.npz"
        level_hits = _read_hits(path, levels)
        if level_hits is None:
            level_hits = rasterizer.cast_cameras(levels)
            _write_hits(path, level_hits)
        pyramids.append(ViewPyramid(camera=levels[0], levels=[
            shade(rasterizer, level, hits) for level, hits in zip(levels, level_hits)]))
    return pyramids


def view_key(rasterizer: Rasterizer, camera: Camera, levels: Sequence[Camera]) -> str:
    return fingerprint(CACHE_FORMAT, rasterizer.fingerprint, camera.K, camera.cam_to_world,
                       camera.width, camera.height, [(c.width, c.height) for c in levels])


def _write_hits(path: Path, level_hits: list[RayHits]) -> None:
    arrays = {}
    for index, hits in enumerate(level_hits):
        arrays[f"face_id{index}"] = hits.face_id
        arrays[f"bary_uv{index}"] = hits.bary_uv
        arrays[f"distance{index}"] = hits.distance
    # Uncompressed: zlib on float hits costs more time than casting the rays again.
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def _read_hits(path: Path, levels: Sequence[Camera]) -> list[RayHits] | None:
    """The cached hits, or None when absent or unreadable (a broken entry is simply recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            level_hits = []
            for index, level in enumerate(levels):
                hits = RayHits(face_id=stored[f"face_id{index}"],
                               bary_uv=stored[f"bary_uv{index}"], distance=stored[f"distance{index}"])
                if len(hits.face_id) != level.width * level.height:
                    return None
                level_hits.append(hits)
            return level_hits
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
