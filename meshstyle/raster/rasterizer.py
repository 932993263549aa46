"""Ray-cast rasterization: per-pixel fragments of a mesh seen by a camera (open3d / Embree, CPU).

A view is rasterized in two steps that read like the data flow:

1. `Rasterizer.cast` shoots one ray per pixel and keeps the raw hits (`RayHits`: face id, the face's
   barycentric (u, v) and the distance along the ray). Rays are built with camera-space z = 1, so
   the distance along a ray *is* the pixel's z-depth.
2. `shade` turns the hits into `Fragments` (UV, normal facing the camera, view angle, texel
   footprint) in one compiled pass over the pixels (numba, all cores); `shade_samples` computes
   only the fields a renderer reads.

Only the raw hits go to the disk cache (`view_pyramids`): everything else is a pure function of the
hits, the mesh and the camera, so a cache hit runs the very same `shade` and returns bit-identical
fragments while storing 16 bytes per pixel instead of ~50.
"""
from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from meshstyle.common.cache import cache_dir as cache_folder
from meshstyle.common.cache import fingerprint
from meshstyle.geometry.camera import Camera
from meshstyle.raster.fragments import Fragments, ViewPyramid, ViewSamples
from meshstyle.common.io import atomic_path
from meshstyle.common.kernels import kernel_helper, parallel_kernel, prange
from meshstyle.common.progress import progress
from meshstyle.geometry.mesh import corner_cross

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
        cross = corner_cross(corners)
        double_area = np.linalg.norm(cross, axis=1)
        self.face_normal = (cross / np.maximum(double_area, 1e-20)[:, None]).astype(np.float32)
        self.texel_density = _texel_density(double_area, uv)
        # (F,6): the three corners' (u, v) in one row, read once per pixel; zeros without an atlas.
        self.face_uv = np.zeros((len(self.faces), 6), np.float32) if uv is None else uv.reshape(-1, 6)
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
        for group in ray_batches(cameras):
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


def ray_batches(cameras: Sequence[Camera]) -> list[list[Camera]]:
    """Consecutive cameras grouped up to BATCH_RAYS rays (a camera larger than that stands alone)."""
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
    _write_rays(_inverse_intrinsics(camera), camera.cam_to_world.astype(np.float64), camera.width, rays)


def shade(rasterizer: Rasterizer, camera: Camera, hits: RayHits) -> Fragments:
    """Fragments of one view from its ray hits (row-major pixels, H*W of them)."""
    fields = _Fields(camera, FRAGMENT_CHANNELS)
    face_id = np.empty(fields.pixels, dtype=np.int64)
    _shade_pixels(hits.face_id, hits.bary_uv, hits.distance, False, *_kernel_view(rasterizer, camera),
                  fields.mask, fields["uv"], fields["footprint"], fields["cos_angle"],
                  fields["depth"], fields["bary"], fields["normal"], face_id, True)
    return Fragments(uv=fields.image("uv"), face_id=torch.from_numpy(face_id.reshape(fields.shape)),
                     bary=fields.image("bary"), depth=fields.image("depth"), normal=fields.image("normal"),
                     cos_angle=fields.image("cos_angle"), footprint=fields.image("footprint"),
                     mask=fields.image("mask"))


def shade_samples(rasterizer: Rasterizer, camera: Camera, face_id: np.ndarray) -> ViewSamples:
    """What drawing a textured view needs (UV, footprint, view angle, coverage), knowing only which
    face each pixel sees (-1: none): the hit on that face is recomputed exactly, by ray/triangle
    intersection, inside the same pass.

    Which face a pixel sees is all a ray cast finds that cannot be recomputed cheaply, so a render
    cache of face ids stores 4 bytes per pixel instead of 16-19 (writing a 640x480 view's samples,
    4.6 MB, cost 12 ms of kernel time here: more than shading it); fresh and cached views go
    through this same function and are bit-identical. The fields the optimiser alone reads are
    skipped. Embree's own barycentrics (float32) differ from these by up to ~3e-4.
    """
    fields = _Fields(camera, SAMPLE_CHANNELS)
    unused = np.empty((0, 3), dtype=np.float32)
    face_id = np.ascontiguousarray(face_id, dtype=np.int32)
    _shade_pixels(face_id, unused[:, :2], unused[:, 0], True, *_kernel_view(rasterizer, camera),
                  fields.mask, fields["uv"], fields["footprint"], fields["cos_angle"],
                  unused[:, 0], unused, unused, np.empty(0, dtype=np.int64), False)
    return ViewSamples(uv=fields.image("uv"), footprint=fields.image("footprint"),
                       cos_angle=fields.image("cos_angle"), mask=fields.image("mask"))


def _kernel_view(rasterizer: Rasterizer, camera: Camera) -> tuple:
    """The per-view and per-mesh arguments `_shade_pixels` reads after the hits."""
    return (_inverse_intrinsics(camera), camera.cam_to_world.astype(np.float64),
            float(camera.K[0, 0]), float(camera.K[1, 1]), camera.width, rasterizer.vertices, rasterizer.faces,
            rasterizer.face_normal, rasterizer.face_uv, rasterizer.texel_density)


def _inverse_intrinsics(camera: Camera) -> np.ndarray:
    return np.linalg.inv(np.asarray(camera.K, dtype=np.float64))


# Float channels of the fragments / of the view samples, in the order they sit in one shared buffer.
FRAGMENT_CHANNELS = {"uv": 2, "bary": 3, "normal": 3, "depth": 1, "cos_angle": 1, "footprint": 1}
SAMPLE_CHANNELS = {"uv": 2, "footprint": 1, "cos_angle": 1}


class _Fields:
    """One view's per-pixel output arrays, all float fields slices of one buffer.

    A single multi-megabyte allocation gets huge pages and, once freed, raises glibc's trim
    threshold so that later views reuse memory instead of faulting fresh pages (measured: 13 fresh
    1.2 MB arrays cost 10 ms in this VM, one 16 MB array 0.3 ms). The kernel writes every pixel,
    misses included, so nothing is zero-filled first.
    """

    def __init__(self, camera: Camera, channels: dict[str, int]):
        self.shape = (camera.height, camera.width)
        self.pixels = camera.height * camera.width
        buffer = np.empty(self.pixels * sum(channels.values()), dtype=np.float32)
        self.arrays, start = {}, 0
        for name, count in channels.items():
            self.arrays[name] = buffer[start:start + self.pixels * count].reshape(
                (self.pixels, count) if count > 1 else (self.pixels,))
            start += self.pixels * count
        self.mask = np.empty(self.pixels, dtype=np.bool_)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def image(self, name: str) -> torch.Tensor:
        values = self.mask if name == "mask" else self.arrays[name]
        return torch.from_numpy(values.reshape(self.shape + values.shape[1:]))


# --- per-pixel kernels: one compiled pass over the pixels (see kernels.py) ------------------------
# As whole-array numpy, the fragments of a 640x480 demo-room view took 12 ms, casting its rays 17 ms.

@parallel_kernel
def _write_rays(K_inv, cam_to_world, width, rays):  # pragma: no cover - compiled
    """Origin = camera centre; direction = R K^-1 (col, row, 1): camera-space z = 1."""
    for row in prange(rays.shape[0] // width):
        y = K_inv[1, 1] * row + K_inv[1, 2]
        for col in range(width):
            x = K_inv[0, 0] * col + K_inv[0, 1] * row + K_inv[0, 2]
            ray = row * width + col
            for axis in range(3):
                rays[ray, axis] = cam_to_world[axis, 3]
                rays[ray, 3 + axis] = cam_to_world[axis, 0] * x + cam_to_world[axis, 1] * y + cam_to_world[axis, 2]


@kernel_helper
def _ray_hit(vertices, faces, face, origin_x, origin_y, origin_z, d_x, d_y, d_z):  # pragma: no cover
    """(u, v, t) where the ray origin + t d meets triangle `face` (Moller-Trumbore; Embree's u, v
    convention: point = (1-u-v) v0 + u v1 + v v2); zeros for a degenerate face."""
    a, b, c = faces[face, 0], faces[face, 1], faces[face, 2]
    e1_x, e1_y, e1_z = vertices[b, 0] - vertices[a, 0], vertices[b, 1] - vertices[a, 1], vertices[b, 2] - vertices[a, 2]
    e2_x, e2_y, e2_z = vertices[c, 0] - vertices[a, 0], vertices[c, 1] - vertices[a, 1], vertices[c, 2] - vertices[a, 2]
    s_x, s_y, s_z = origin_x - vertices[a, 0], origin_y - vertices[a, 1], origin_z - vertices[a, 2]
    p_x, p_y, p_z = d_y * e2_z - d_z * e2_y, d_z * e2_x - d_x * e2_z, d_x * e2_y - d_y * e2_x
    q_x, q_y, q_z = s_y * e1_z - s_z * e1_y, s_z * e1_x - s_x * e1_z, s_x * e1_y - s_y * e1_x
    determinant = e1_x * p_x + e1_y * p_y + e1_z * p_z
    if determinant == 0.0:            # Embree does not report hits on these
        return 0.0, 0.0, 0.0
    inverse = 1.0 / determinant
    return ((s_x * p_x + s_y * p_y + s_z * p_z) * inverse, (d_x * q_x + d_y * q_y + d_z * q_z) * inverse,
            (e2_x * q_x + e2_y * q_y + e2_z * q_z) * inverse)


@parallel_kernel(fastmath=True)
def _shade_pixels(face_id, bary_uv, distance, intersect, K_inv, cam_to_world, fx, fy, width, vertices, faces,
                  face_normal, face_uv, texel_density, mask, uv, footprint, cos_angle, depth, bary, normal,
                  face_out, full):  # pragma: no cover - compiled
    """Fragments of every pixel from its hit: zeros (face -1) where the ray missed. The hit's
    barycentrics and depth are read from `bary_uv` and `distance`, or with `intersect` computed
    from the face alone; only `full` writes depth, barycentrics, normal and face id.

    The footprint is the world length of the longer axis of one pixel's footprint on the surface
    plane, times the face's texel density. The surface point seen through normalised image point
    r = (x, y, 1) is p = c r / (n.r); its derivatives per pixel step are d/f (e_x - r n_x/(n.r)) and
    d/f (e_y - r n_y/(n.r)). The largest singular value of that 3x2 Jacobian, in closed form, is
    d/f on a fronto-parallel plane and d/(f cos) at the image centre of a plane tilted by the view
    angle. |n.r| is clamped at grazing angles (MIN_FOOTPRINT_COS); its sign is irrelevant.
    """
    inv_fx2, inv_fy2, inv_fxy = 1.0 / (fx * fx), 1.0 / (fy * fy), 1.0 / (fx * fy)
    for row in prange(face_id.shape[0] // width):
        y = K_inv[1, 1] * row + K_inv[1, 2]
        for col in range(width):
            pixel = row * width + col
            face = face_id[pixel]
            mask[pixel] = face >= 0
            if face < 0:
                uv[pixel, 0] = uv[pixel, 1] = footprint[pixel] = cos_angle[pixel] = 0.0
                if full:
                    face_out[pixel] = -1
                    depth[pixel] = 0.0
                    for axis in range(3):
                        bary[pixel, axis] = normal[pixel, axis] = 0.0
                continue
            x = K_inv[0, 0] * col + K_inv[0, 1] * row + K_inv[0, 2]   # the footprint ignores skew
            if intersect:
                u, v, hit_depth = _ray_hit(
                    vertices, faces, face, cam_to_world[0, 3], cam_to_world[1, 3], cam_to_world[2, 3],
                    cam_to_world[0, 0] * x + cam_to_world[0, 1] * y + cam_to_world[0, 2],
                    cam_to_world[1, 0] * x + cam_to_world[1, 1] * y + cam_to_world[1, 2],
                    cam_to_world[2, 0] * x + cam_to_world[2, 1] * y + cam_to_world[2, 2])
            else:
                u, v, hit_depth = bary_uv[pixel, 0], bary_uv[pixel, 1], distance[pixel]
            w = 1.0 - u - v
            # Camera-space normal n_c = R^T n_world.
            # (Scalar indexing only here: a row view would count references from every thread.)
            n_x = (face_normal[face, 0] * cam_to_world[0, 0] + face_normal[face, 1] * cam_to_world[1, 0]
                   + face_normal[face, 2] * cam_to_world[2, 0])
            n_y = (face_normal[face, 0] * cam_to_world[0, 1] + face_normal[face, 1] * cam_to_world[1, 1]
                   + face_normal[face, 2] * cam_to_world[2, 1])
            n_z = (face_normal[face, 0] * cam_to_world[0, 2] + face_normal[face, 1] * cam_to_world[1, 2]
                   + face_normal[face, 2] * cam_to_world[2, 2])
            facing = n_x * x + n_y * y + n_z
            r2 = x * x + y * y + 1.0
            ray_length = math.sqrt(r2)
            cos = min(abs(facing) / ray_length, 1.0)
            inv_facing = 1.0 / math.copysign(max(cos, MIN_FOOTPRINT_COS) * ray_length, facing)
            a, b = n_x * inv_facing, n_y * inv_facing
            # Unit-depth Jacobian products J^T J, each scaled by 1/f per pixel axis.
            xx = (a * a * r2 - 2.0 * x * a + 1.0) * inv_fx2
            yy = (b * b * r2 - 2.0 * y * b + 1.0) * inv_fy2
            xy = (a * b * r2 - x * b - y * a) * inv_fxy
            largest = 0.5 * (xx + yy) + math.sqrt(0.25 * (xx - yy) ** 2 + xy * xy)
            footprint[pixel] = math.sqrt(max(largest, 0.0)) * hit_depth * texel_density[face]
            cos_angle[pixel] = cos
            uv[pixel, 0] = w * face_uv[face, 0] + u * face_uv[face, 2] + v * face_uv[face, 4]
            uv[pixel, 1] = w * face_uv[face, 1] + u * face_uv[face, 3] + v * face_uv[face, 5]
            if full:
                face_out[pixel] = face
                depth[pixel] = hit_depth
                bary[pixel, 0], bary[pixel, 1], bary[pixel, 2] = w, u, v
                # Turn normals towards the camera: the ray and a facing normal point against each other.
                towards = -math.copysign(1.0, facing)
                for axis in range(3):
                    normal[pixel, axis] = towards * face_normal[face, axis]


def _texel_density(double_area: np.ndarray, uv: np.ndarray | None) -> np.ndarray:
    """Per face sqrt(uv area / world area): texture units per metre (1 without an atlas)."""
    if uv is None:
        return np.ones(len(double_area), dtype=np.float32)
    edge1, edge2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    uv_double_area = np.abs(edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]).astype(np.float64)
    density = np.sqrt(uv_double_area / np.maximum(double_area.astype(np.float64), 1e-20))
    return np.where(double_area > 0, density, 0.0).astype(np.float32)


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
