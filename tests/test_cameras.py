"""Camera generators on real meshes: a furnished box room, an object, spline paths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from meshstyle.views.cameras import (Camera, filter_views, for_scene, interpolate, intrinsics_from_fov, look_at, orbit,
                               walkthrough)
from meshstyle.config import CameraConfig
from meshstyle.errors import InputError
from meshstyle.raster.rasterizer import Rasterizer
from meshstyle.geometry.scene import Photo, Scene

ROOM = np.array([4.0, 5.0, 2.7])
# A closed cupboard big enough to stand in, taller than the eye: a walkthrough must not put a camera inside.
WARDROBE = (np.array([0.0, 3.2, 0.0]), np.array([2.0, 5.0, 2.1]))
TABLE = (np.array([2.2, 1.0, 0.0]), np.array([3.4, 2.2, 0.75]))


def box_between(low: np.ndarray, high: np.ndarray) -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=high - low)
    box.apply_translation((low + high) / 2)
    return box


def furnished_room() -> Scene:
    shell = box_between(np.zeros(3), ROOM)
    shell.invert()                       # walls seen from inside face inwards
    mesh = trimesh.util.concatenate([shell, box_between(*WARDROBE), box_between(*TABLE)])
    return Scene(name="box-room", vertices=np.asarray(mesh.vertices), faces=np.asarray(mesh.faces), kind="room")


def an_object() -> Scene:
    mesh = trimesh.util.concatenate([trimesh.creation.icosphere(subdivisions=2, radius=0.4),
                                     box_between(np.array([0.2, -0.1, -0.2]), np.array([1.0, 0.3, 0.2]))])
    mesh.apply_translation((5.0, -2.0, 1.0))
    return Scene(name="object", vertices=np.asarray(mesh.vertices), faces=np.asarray(mesh.faces))


def inside(point: np.ndarray, box: tuple[np.ndarray, np.ndarray], margin: float = 0.0) -> bool:
    return bool(np.all(point >= box[0] - margin) and np.all(point <= box[1] + margin))


def headings(cameras: list[Camera]) -> tuple[np.ndarray, np.ndarray]:
    """(yaw, pitch) in degrees of each camera's optical axis (z-up world)."""
    forward = np.stack([camera.cam_to_world[:3, 2] for camera in cameras])
    return np.degrees(np.arctan2(forward[:, 1], forward[:, 0])), np.degrees(np.arcsin(forward[:, 2]))


def test_walkthrough_stands_on_free_floor_and_looks_at_the_room():
    scene = furnished_room()
    cameras = walkthrough(scene, 10, np.random.default_rng(0), width=64, height=48)
    assert len(cameras) == 10
    centres = np.stack([camera.center for camera in cameras])
    np.testing.assert_allclose(centres[:, 2], 1.6, atol=1e-6)
    # Distances worked out from the boxes themselves: to the walls from inside, to furniture from outside.
    to_walls = np.minimum(centres, ROOM - centres).min(axis=1)
    to_furniture = [np.linalg.norm(np.maximum(np.maximum(low - centres, centres - high), 0), axis=1)
                    for low, high in (WARDROBE, TABLE)]
    assert np.minimum(to_walls, np.minimum(*to_furniture)).min() >= 0.4 - 1e-6, "0.4 m from every surface"
    for centre in centres:
        assert inside(centre, (np.zeros(3), ROOM))
        assert not inside(centre, WARDROBE, margin=0.4), "not inside or against the wardrobe"
        assert not inside(centre, (TABLE[0], TABLE[1] + [0, 0, 2.0])), "not standing on the table"
    # Spread over the floor, not bunched up.
    gaps = np.linalg.norm(centres[:, None, :2] - centres[None, :, :2], axis=-1) + np.eye(10) * 9
    assert gaps.min(axis=1).mean() > 0.7

    yaw, pitch = headings(cameras)
    assert len(np.unique(((yaw + 180) // 90).astype(int))) >= 3, "yaws spread around the circle"
    assert pitch.min() >= -35.5 and pitch.max() <= 10.5 and pitch.std() > 5
    rolls = [camera.cam_to_world[2, 0] for camera in cameras]    # image x axis stays horizontal
    np.testing.assert_allclose(rolls, 0.0, atol=1e-9)
    coverage = [float(f.mask.float().mean()) for f in Rasterizer(scene.vertices, scene.faces).render_many(cameras)]
    assert min(coverage) > 0.99
    depth_medians = [float(f.depth.median()) for f in Rasterizer(scene.vertices, scene.faces).render_many(cameras)]
    assert max(depth_medians) > 1.5 * min(depth_medians), "views at varied distances"


def test_walkthrough_is_deterministic_per_seed():
    scene = furnished_room()
    first = walkthrough(scene, 4, np.random.default_rng(7), width=32, height=24)
    again = walkthrough(scene, 4, np.random.default_rng(7), width=32, height=24)
    other = walkthrough(scene, 4, np.random.default_rng(8), width=32, height=24)
    assert all(np.array_equal(a.cam_to_world, b.cam_to_world) for a, b in zip(first, again))
    assert not all(np.allclose(a.cam_to_world, b.cam_to_world) for a, b in zip(first, other))


def test_walkthrough_survives_a_room_whose_walls_face_outwards(capsys):
    """A box used as a room without flipping it: every hit is a back face, so the furniture test
    cannot work; the walkthrough says so and still stands in the room."""
    shell = box_between(np.zeros(3), ROOM)
    scene = Scene(name="unflipped", vertices=np.asarray(shell.vertices), faces=np.asarray(shell.faces), kind="room")
    cameras = walkthrough(scene, 3, np.random.default_rng(0), width=32, height=24)
    assert "winding" in capsys.readouterr().err
    centres = np.stack([camera.center for camera in cameras])
    assert np.minimum(centres, ROOM - centres).min() >= 0.4 - 1e-6


def test_walkthrough_refuses_a_scene_without_floor_space():
    scene = an_object()
    with pytest.raises(InputError):
        walkthrough(scene, 3, np.random.default_rng(0))


def test_orbit_frames_the_object_from_every_side():
    scene = an_object()
    cameras = orbit(scene, 6, width=64, height=48, fov_deg=50, elevation_deg=20)
    centre = scene.bounds.mean(axis=0)
    distances = [np.linalg.norm(camera.center - centre) for camera in cameras]
    np.testing.assert_allclose(distances, distances[0])
    yaw, pitch = headings(cameras)
    np.testing.assert_allclose(pitch, -20.0, atol=1e-6)
    np.testing.assert_allclose(np.sort((yaw - yaw[0]) % 360), np.arange(6) * 60.0, atol=1e-6)
    for fragments in Rasterizer(scene.vertices, scene.faces).render_many(cameras):
        mask = fragments.mask.numpy()
        assert mask.mean() > 0.1, "the object fills a good part of the view"
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert not border.any(), "and fits inside it"


def test_interpolate_passes_through_its_keyframes_smoothly():
    scene = an_object()
    keyframes = orbit(scene, 4, width=64, height=48)[:3] + [orbit(scene, 5, width=64, height=48, elevation_deg=45)[1]]
    path = interpolate(keyframes, 3 * 8 + 1)
    assert len(path) == 25
    for index, keyframe in enumerate(keyframes):
        np.testing.assert_allclose(path[8 * index].cam_to_world, keyframe.cam_to_world, atol=1e-9)
    for camera in path:
        rotation = camera.cam_to_world[:3, :3]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
    steps = np.linalg.norm(np.diff([camera.center for camera in path], axis=0), axis=1)
    assert steps.max() < 2.0 * steps.mean(), "no jumps along the path"
    turns = [np.degrees(np.arccos(np.clip((np.trace(a.cam_to_world[:3, :3].T @ b.cam_to_world[:3, :3]) - 1) / 2, -1, 1)))
             for a, b in zip(path, path[1:])]
    assert max(turns) < 2.5 * np.mean(turns)
    assert interpolate(keyframes[:1], 3) == keyframes[:1] * 3


def test_filter_views_drops_views_that_miss_the_mesh():
    scene = an_object()
    rasterizer = Rasterizer(scene.vertices, scene.faces)
    looking = orbit(scene, 3, width=64, height=48)
    away = [Camera(K=camera.K, cam_to_world=look_at(camera.center, 2 * camera.center - scene.bounds.mean(axis=0)),
                   width=64, height=48) for camera in looking[:2]]
    kept, dropped = filter_views(looking + away, rasterizer, min_coverage=0.05)
    assert dropped == 2
    assert [id(camera) for camera in kept] == [id(camera) for camera in looking]


def test_for_scene_picks_the_kind_of_cameras():
    rng = np.random.default_rng(0)
    room = furnished_room()
    thing = an_object()
    auto = CameraConfig(kind="auto", fov_deg=60.0)
    room_views = for_scene(room, 3, auto, rng, 64, 48)
    assert all(camera.center[2] == pytest.approx(1.6) for camera in room_views)
    object_views = for_scene(thing, 3, auto, rng, 64, 48)
    expected = orbit(thing, 3, width=64, height=48, fov_deg=60.0)
    assert all(np.allclose(a.cam_to_world, b.cam_to_world) for a, b in zip(object_views, expected))
    assert for_scene(room, 2, CameraConfig(kind="orbit"), rng, 64, 48)[0].center[2] > ROOM[2]

    posed = Scene(name="scan", vertices=thing.vertices, faces=thing.faces, photos=[
        Photo(camera=camera, color_path=Path(f"{index}.jpg")) for index, camera in enumerate(orbit(thing, 10))])
    chosen = for_scene(posed, 4, auto, rng, 64, 48)
    assert [camera for camera in chosen] == [posed.photos[i].camera for i in (0, 3, 6, 9)]
    with pytest.raises(InputError):
        for_scene(thing, 3, CameraConfig(kind="poses"), rng, 64, 48)
    with pytest.raises(InputError):
        for_scene(thing, 3, CameraConfig(kind="drone"), rng, 64, 48)


def test_scaled_camera_keeps_the_field_of_view():
    camera = Camera(K=intrinsics_from_fov(64, 48, 50.0), cam_to_world=np.eye(4), width=64, height=48)
    half = camera.scaled(24)
    assert (half.width, half.height) == (32, 24)
    # The outer edges of the image (pixel corners at -0.5 and size - 0.5) keep their ray directions.
    for cam in (camera, half):
        left = (-0.5 - cam.K[0, 2]) / cam.K[0, 0]
        top = (-0.5 - cam.K[1, 2]) / cam.K[1, 1]
        assert left == pytest.approx(-np.tan(np.radians(25.0)) * 64 / 48)
        assert top == pytest.approx(-np.tan(np.radians(25.0)))
