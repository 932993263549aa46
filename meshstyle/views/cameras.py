"""Camera generators: orbits, walkthroughs, view filtering and interpolation (they build list[Camera])."""
from __future__ import annotations

import numpy as np

from meshstyle.config import CameraConfig
from meshstyle.errors import InputError
from meshstyle.common.progress import warn
from meshstyle.geometry.camera import Camera, intrinsics_from_fov, look_at, rescale_intrinsics
from meshstyle.geometry.scene import Scene
from meshstyle.raster.rasterizer import Rasterizer


CLEARANCE_M = 0.4              # generated cameras keep at least this far from any surface
PROBE_DIRECTIONS = 64          # rays cast around a candidate eye to test that it is inside the room
SCORE_SIZE = (40, 30)          # image size of the quick renders that score a view direction


def orbit(scene: Scene, n: int, width: int = 320, height: int = 240, fov_deg: float = 50.0,
          elevation_deg: float = 20.0) -> list[Camera]:
    """`n` cameras evenly around an object, `elevation_deg` above its horizon, its bounding sphere
    just filling the narrower side of the view."""
    up, east, north = _up_basis(scene.up)
    centre = scene.bounds.mean(axis=0)
    radius = float(np.linalg.norm(scene.vertices - centre, axis=1).max()) or 1.0
    K = intrinsics_from_fov(width, height, fov_deg)
    half_fov = min(np.arctan(0.5 * height / K[1, 1]), np.arctan(0.5 * width / K[0, 0]))
    distance = radius / np.sin(half_fov)
    elevation = np.radians(elevation_deg)
    cameras = []
    for azimuth in 2 * np.pi * np.arange(n) / max(n, 1):
        horizontal = np.cos(azimuth) * east + np.sin(azimuth) * north
        eye = centre + distance * (np.cos(elevation) * horizontal + np.sin(elevation) * up)
        cameras.append(Camera(K=K.copy(), cam_to_world=look_at(eye, centre, up), width=width, height=height))
    return cameras


def walkthrough(scene: Scene, n: int, rng: np.random.Generator, width: int = 320, height: int = 240,
                fov_deg: float = 70.0, eye_height: float = 1.6, rasterizer: "Rasterizer | None" = None) -> list[Camera]:
    """`n` views from inside a room: eyes at `eye_height` over free floor, spread over the room
    (farthest-point sampling), yaws spread over 360 degrees, pitch between -35 and +10 degrees.

    A candidate eye is free when a ray straight down meets the floor `eye_height` below (not a
    table top), rays around it stay inside the room (they hit, and hit front faces: inside a closed
    piece of furniture they would meet its back faces) and no surface is nearer than CLEARANCE_M.
    Pass the scene's `rasterizer` to reuse its ray-casting scene (building one takes seconds).
    """
    rasterizer = rasterizer if rasterizer is not None else Rasterizer(scene.vertices, scene.faces)
    up, east, north = _up_basis(scene.up)
    floor = float(np.percentile(scene.vertices @ up, 1.0))   # robust to stray points under a scan
    plan = np.stack([scene.vertices @ east, scene.vertices @ north], axis=1)
    low, high = plan.min(axis=0) + CLEARANCE_M, plan.max(axis=0) - CLEARANCE_M
    if np.any(high <= low):
        raise InputError(scene.source or scene.name, "scene is too small for a walkthrough (a room needs "
                         f"more than {2 * CLEARANCE_M} m of floor)")
    spots = rng.uniform(low, high, size=(max(256, 24 * n), 2))
    eyes = spots[:, :1] * east + spots[:, 1:] * north + (floor + eye_height) * up
    eyes = eyes[_free_eyes(rasterizer, eyes, up, eye_height, scene.source or scene.name)]
    eyes = eyes[_farthest_points(eyes, n, rng)]

    K = intrinsics_from_fov(width, height, fov_deg)
    yaw_targets = rng.permutation(2 * np.pi * (np.arange(n) + rng.uniform(size=n)) / n)
    pitches = np.radians(rng.uniform(-35.0, 10.0, size=n))
    # Turn away from the target yaw only as far as needed to see the room rather than a wall up close.
    turns = np.radians([0.0, 45.0, -45.0, 90.0, -90.0, 135.0, -135.0, 180.0])
    candidates = [Camera(K=K, cam_to_world=_pose(eye, yaw + turn, pitch, up, east, north), width=width, height=height)
                  for eye, yaw, pitch in zip(eyes, yaw_targets, pitches) for turn in turns]
    scores = _view_scores(rasterizer, candidates)
    cameras = []
    for index in range(n):
        options = range(index * len(turns), (index + 1) * len(turns))
        open_views = [i for i in options if scores[i][0] >= 0.95 and scores[i][1] >= 1.2]
        best = open_views[0] if open_views else max(options, key=lambda i: scores[i][0] + 0.25 * min(scores[i][1], 2.0))
        cameras.append(candidates[best])
    return cameras


def for_scene(scene: Scene, n: int, config: CameraConfig, rng: np.random.Generator,
              width: int = 320, height: int = 240, rasterizer: "Rasterizer | None" = None) -> list[Camera]:
    """The cameras a run uses on `scene`: `config.kind` auto picks the scan's own photos, a
    walkthrough inside a room, else an orbit around the object. `rasterizer`: see walkthrough."""

    kind = config.kind
    if kind == "auto":
        kind = "poses" if scene.photos else ("walkthrough" if scene.kind == "room" else "orbit")
    if kind == "poses":
        if not scene.photos:
            raise InputError(scene.source or scene.name, "cameras.kind = 'poses' needs a scan with photos")
        # Evenly through the capture: consecutive frames are nearly the same view.
        picks = np.unique(np.linspace(0, len(scene.photos) - 1, min(n, len(scene.photos))).round().astype(int))
        return [scene.photos[i].camera for i in picks]
    if kind == "walkthrough":
        return walkthrough(scene, n, rng, width=width, height=height, fov_deg=config.fov_deg, rasterizer=rasterizer)
    if kind == "orbit":
        return orbit(scene, n, width=width, height=height, fov_deg=config.fov_deg)
    raise InputError("cameras.kind", f"unknown camera kind '{config.kind}' (auto, orbit, walkthrough, poses)")


def filter_views(cameras: list[Camera], rasterizer: Rasterizer, min_coverage: float,
                 height: int = 48) -> tuple[list[Camera], int]:
    """Drop views whose share of pixels covering the mesh is below `min_coverage` (judged on a
    `height`-pixel render); returns the kept cameras and how many were dropped."""
    coverage = view_coverage(cameras, rasterizer, height)
    kept = [camera for camera, share in zip(cameras, coverage) if share >= min_coverage]
    return kept, len(cameras) - len(kept)


def view_coverage(cameras: list[Camera], rasterizer: Rasterizer, height: int = 48) -> list[float]:
    """Per camera, the share of its pixels that see the mesh (judged on a `height`-pixel render)."""
    if not cameras:
        return []
    small = [camera.scaled(min(height, camera.height)) for camera in cameras]
    return [float(fragments.mask.float().mean()) for fragments in rasterizer.render_many(small)]


def interpolate(cameras: list[Camera], n: int) -> list[Camera]:
    """`n` cameras along a smooth path through `cameras` (first to last, evenly in keyframe index):
    Catmull-Rom through the positions and through sign-continuous quaternions (renormalised),
    intrinsics linearly.
    Frame j lies on keyframe i when j * (len(cameras) - 1) == i * (n - 1)."""
    from scipy.spatial.transform import Rotation

    if not cameras:
        raise ValueError("interpolate needs at least one camera")
    first = cameras[0]
    if len(cameras) == 1 or n == 1:
        return [first] * n
    count = len(cameras)
    positions = np.stack([camera.center for camera in cameras])
    padded = _pad_ends(positions)
    quaternions = _pad_ends(_continuous_quaternions(
        Rotation.from_matrix(np.stack([camera.cam_to_world[:3, :3] for camera in cameras]))))
    intrinsics = np.stack([rescale_intrinsics(camera.K, first.width / camera.width, first.height / camera.height) for camera in cameras])

    path = []
    for s in np.linspace(0.0, count - 1, n):
        segment = min(int(np.floor(s)), count - 2)
        t = s - segment
        pose = np.eye(4)
        pose[:3, 3] = _catmull_rom(padded[segment:segment + 4], t)
        quaternion = _catmull_rom(quaternions[segment:segment + 4], t)
        pose[:3, :3] = Rotation.from_quat(quaternion / np.linalg.norm(quaternion)).as_matrix()
        K = (1 - t) * intrinsics[segment] + t * intrinsics[segment + 1]
        path.append(Camera(K=K, cam_to_world=pose, width=first.width, height=first.height))
    return path


def _up_basis(up) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit up and two horizontal unit vectors (east, north) completing a right-handed frame."""
    up = np.asarray(up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    east = helper - up * (helper @ up)
    east /= np.linalg.norm(east)
    return up, east, np.cross(up, east)


def _pose(eye, yaw: float, pitch: float, up, east, north) -> np.ndarray:
    heading = np.cos(pitch) * (np.cos(yaw) * east + np.sin(yaw) * north) + np.sin(pitch) * up
    return look_at(eye, eye + heading, up)


def _fibonacci_sphere(count: int) -> np.ndarray:
    index = np.arange(count) + 0.5
    z = 1 - 2 * index / count
    azimuth = np.pi * (1 + 5 ** 0.5) * index
    ring = np.sqrt(1 - z * z)
    return np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=1)


def _free_eyes(rasterizer: Rasterizer, eyes: np.ndarray, up: np.ndarray, eye_height: float,
               where: str) -> np.ndarray:
    """Boolean mask of the eyes that stand on open floor inside the room, clear of every surface.

    The furniture test trusts the triangles' winding (room surfaces face the inside) and the
    enclosure test a closed room; a scan may break either, so they are dropped, with a warning,
    when no eye passes with them.
    """

    count = len(eyes)
    down = rasterizer.cast(eyes, np.broadcast_to(-up, (count, 3)))
    standing = down.hit & (np.abs(down.distance - eye_height) < 0.25)
    clear = rasterizer.distance(eyes) >= CLEARANCE_M

    directions = _fibonacci_sphere(PROBE_DIRECTIONS)
    probes = rasterizer.cast(np.repeat(eyes, len(directions), axis=0), np.tile(directions, (count, 1)))
    hit = probes.hit.reshape(count, -1)
    # Below and around the eye the room must be closed (scans often lack a ceiling, so not above).
    around = directions @ up < 0.3
    enclosed = hit[:, around].mean(axis=1) >= 0.95
    # Inside a closed piece of furniture the rays meet the backs of its faces.
    normals = rasterizer.face_normal[np.where(probes.hit, probes.face_id, 0)]
    back_facing = (np.einsum("nk,nk->n", normals, np.tile(directions, (count, 1))) > 0).reshape(count, -1) & hit
    outside_furniture = back_facing.sum(axis=1) <= 0.1 * np.maximum(hit.sum(axis=1), 1)

    base = standing & clear
    for extra, dropped in ((enclosed & outside_furniture, None),
                           (enclosed, "triangle winding looks inconsistent: cannot tell furniture interiors apart"),
                           (np.ones(count, dtype=bool), "the room is not closed around any free spot")):
        if (base & extra).any():
            if dropped:
                warn(f"{where}: walkthrough: {dropped}")
            return base & extra
    raise InputError(where, f"no free floor found for a walkthrough at eye height {eye_height} m "
                     f"(is it a room, with the floor at the bottom and up along {tuple(np.round(up, 3))}?)")


def _farthest_points(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n` points spread out by farthest-point sampling (repeating when too few)."""
    chosen = [int(rng.integers(len(points)))]
    nearest = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < min(n, len(points)):
        chosen.append(int(nearest.argmax()))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.resize(np.array(chosen), n)


def _view_scores(rasterizer: Rasterizer, cameras: list[Camera]) -> list[tuple[float, float]]:
    """(coverage, median depth in metres) of each camera from a tiny render."""
    width, height = SCORE_SIZE
    small = [Camera(K=intrinsics_from_fov(width, height, _fov_y(camera)), cam_to_world=camera.cam_to_world,
                    width=width, height=height) for camera in cameras]
    scores = []
    for fragments in rasterizer.render_many(small):
        covered = fragments.depth[fragments.mask]
        scores.append((float(fragments.mask.float().mean()), float(covered.median()) if len(covered) else 0.0))
    return scores


def _fov_y(camera: Camera) -> float:
    return float(np.degrees(2 * np.arctan(0.5 * camera.height / camera.K[1, 1])))


def _pad_ends(keys: np.ndarray) -> np.ndarray:
    """Reflected phantom keys before the first and after the last, so the spline ends on them."""
    return np.concatenate([2 * keys[:1] - keys[1:2], keys, 2 * keys[-1:] - keys[-2:-1]])


def _catmull_rom(points: np.ndarray, t: float) -> np.ndarray:
    p0, p1, p2, p3 = points
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                  + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)


def _continuous_quaternions(rotations) -> np.ndarray:
    """Unit quaternions with signs chosen so each is in the same hemisphere as the one before.

    q and -q are the same rotation; without this, a spline through them takes the long way round
    and the camera spins by ~180 degrees between two similar keyframes."""
    quaternions = rotations.as_quat()
    for index in range(1, len(quaternions)):
        if quaternions[index] @ quaternions[index - 1] < 0:
            quaternions[index] = -quaternions[index]
    return quaternions
