"""Scan folders (7-Scenes/BundleFusion, ScanNet, NeRF), frame selection and photos as content.

Every folder is built here in tmp_path: a box room written as a real mesh file, small colour images,
pose and intrinsics files in each layout's own format, with broken frames mixed in.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh
from scipy.ndimage import gaussian_filter

from meshstyle.views.cameras import Camera, look_at
from meshstyle.config import SceneConfig, StylizeConfig
from meshstyle.errors import InputError
from meshstyle.pipeline import pyramid_heights, train_view
from meshstyle.raster.rasterizer import Rasterizer, view_pyramids
from meshstyle.atlas.texture_size import default_texture_size
from meshstyle.geometry.camera import OPENGL_TO_OPENCV
from meshstyle.inputs.scans import frame_subset, load_scan
from meshstyle.inputs.up_axis import level_with_floor, up_from_cameras
from meshstyle.stylization.optimize import PatchTarget
from meshstyle.stylization.photo_targets import content_target
from meshstyle.views.frame_selection import select_frames
from meshstyle.geometry.scene import Photo, Scene

WIDTH, HEIGHT = 64, 48
K = np.array([[40.0, 0.0, 31.5], [0.0, 40.0, 23.5], [0.0, 0.0, 1.0]])
ROOM_EXTENTS = (4.0, 3.0, 2.5)     # centred on the origin, z up
WALL_TARGETS = [(2.0, 0.0, 0.0), (0.0, 1.5, 0.0), (-2.0, 0.0, 0.0), (0.0, -1.5, 0.0)]


def room_mesh() -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=ROOM_EXTENTS)
    vertices, faces = trimesh.remesh.subdivide_to_size(box.vertices, box.faces, max_edge=0.3)
    return trimesh.Trimesh(vertices, faces[:, ::-1], process=False)   # normals facing inwards


def write_mesh(path: Path) -> Path:
    room_mesh().export(path)
    return path


def noise_image(seed: int, size=(WIDTH, HEIGHT), blur: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.random((size[1], size[0], 3))
    if blur:
        pixels = gaussian_filter(pixels, sigma=(blur, blur, 0))
    return (pixels * 255).astype(np.uint8)


def wall_pose(index: int, eye=(0.0, 0.0, 0.0)) -> np.ndarray:
    return look_at(np.array(eye, dtype=float), np.array(WALL_TARGETS[index % 4]))


def write_matrix(path: Path, matrix: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, matrix)


def warnings_of(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "warning" in line]


# --------------------------------------------------------------------------- 7-Scenes / BundleFusion


def make_7scenes(folder: Path) -> Path:
    """8 frames in frames/: 0,1,7 good; 2 non-finite pose, 3 non-rigid pose, 4 missing image,
    5 corrupt image, 6 image of the wrong size."""
    frames = folder / "frames"
    frames.mkdir(parents=True)
    write_mesh(folder / "room.ply")
    write_matrix(folder / "camera-intrinsics.txt", K)
    for index in range(8):
        stem = frames / f"frame-{index:06d}"
        pose = wall_pose(index)
        if index == 2:
            pose[0, 3] = -np.inf
        if index == 3:
            pose[:3, :3] *= 1.5
        write_matrix(Path(f"{stem}.pose.txt"), pose)
        if index == 5:
            Path(f"{stem}.color.jpg").write_bytes(b"this is not a jpeg")
        elif index == 6:
            iio.imwrite(f"{stem}.color.jpg", noise_image(index, size=(WIDTH * 2, HEIGHT)))
        elif index != 4:
            iio.imwrite(f"{stem}.color.jpg", noise_image(index))
        if index == 0:
            iio.imwrite(f"{stem}.depth.png", np.full((HEIGHT, WIDTH), 2000, dtype=np.uint16))
    return folder


def test_7scenes_loads_good_frames_and_counts_skipped_ones_in_one_warning_each(tmp_path, capsys):
    scene = load_scan(make_7scenes(tmp_path / "kitchen"))

    assert [photo.name for photo in scene.photos] == ["frame-000000", "frame-000001", "frame-000007"]
    assert scene.kind == "room" and scene.name == "kitchen" and len(scene.faces) == len(room_mesh().faces)
    camera = scene.photos[0].camera
    assert (camera.width, camera.height) == (WIDTH, HEIGHT)
    np.testing.assert_allclose(camera.K, K)
    np.testing.assert_allclose(camera.cam_to_world, wall_pose(0), atol=1e-6)
    assert scene.photos[0].depth_path.name == "frame-000000.depth.png"
    assert scene.photos[1].depth_path is None
    # Cameras built with +z up hold their image-up axis along +z: the estimate finds it.
    np.testing.assert_allclose(scene.up, (0.0, 0.0, 1.0), atol=1e-6)

    warnings = warnings_of(capsys)
    assert len(warnings) == 2, warnings
    assert "skipped 2 of 8 frames with invalid poses (1 non-finite, 1 not rigid)" in warnings[0]
    assert "skipped 3 of 6 frames for their images" in warnings[1]
    for reason in ("1 missing image", "1 unreadable image", "1 not 64x48"):
        assert reason in warnings[1]


def test_bundlefusion_info_txt_scales_intrinsics_to_resized_images_and_keeps_depth_grid(tmp_path):
    folder = tmp_path / "bf"
    folder.mkdir()
    write_mesh(folder / "mesh.ply")
    # Intrinsics stated for 128x96 images; the colour frames on disk were resized to 64x48.
    color = [80, 0, 63.5, 0, 0, 80, 47.5, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    depth = [30, 0, 15.5, 0, 0, 30, 11.5, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    (folder / "info.txt").write_text(
        "m_versionNumber = 4\nm_colorWidth = 128\nm_colorHeight = 96\nm_depthWidth = 32\nm_depthHeight = 24\n"
        f"m_calibrationColorIntrinsic = {' '.join(map(str, color))}\n"
        f"m_calibrationDepthIntrinsic = {' '.join(map(str, depth))}\n")
    for index in range(3):
        write_matrix(folder / f"frame-{index:06d}.pose.txt", wall_pose(index))
        iio.imwrite(folder / f"frame-{index:06d}.color.png", noise_image(index))
        iio.imwrite(folder / f"frame-{index:06d}.depth.png", np.full((24, 32), 1500, dtype=np.uint16))

    scene = load_scan(folder)

    assert len(scene.photos) == 3
    np.testing.assert_allclose(scene.photos[0].camera.K, K)          # 80 -> 40, 63.5 -> 31.5
    depth_camera = scene.photos[0].depth_camera
    assert (depth_camera.width, depth_camera.height) == (32, 24)
    np.testing.assert_allclose(depth_camera.K, np.array(depth).reshape(4, 4)[:3, :3])
    np.testing.assert_allclose(depth_camera.cam_to_world, scene.photos[0].camera.cam_to_world)


def test_7scenes_without_intrinsics_asks_for_a_file_and_accepts_a_given_one(tmp_path):
    folder = make_7scenes(tmp_path / "kitchen")
    moved = tmp_path / "calib.txt"
    (folder / "camera-intrinsics.txt").rename(moved)
    with pytest.raises(InputError, match="no intrinsics found.*scene.intrinsics"):
        load_scan(folder)
    scene = load_scan(folder, SceneConfig(intrinsics=str(moved)))
    np.testing.assert_allclose(scene.photos[0].camera.K, K)


def test_no_usable_frame_is_an_input_error_naming_the_problems(tmp_path):
    folder = make_7scenes(tmp_path / "kitchen")
    with pytest.raises(InputError, match=r"no usable frames among 2 \(1 non-finite, 1 not rigid\)"):
        load_scan(folder, SceneConfig(frames="2,3"))


# --------------------------------------------------------------------------- ScanNet


def make_scannet(folder: Path) -> Path:
    """12 frames 0..11 (colour 64x48 jpg, depth 32x24 png); frame 4 has ScanNet's -inf pose."""
    for sub in ("color", "pose", "depth"):
        (folder / sub).mkdir(parents=True)
    write_mesh(folder / "scene0000_00_vh_clean_2.ply")
    write_mesh(folder / "scene0000_00_vh_clean.ply")
    color_4x4 = np.eye(4)
    color_4x4[:3, :3] = K
    write_matrix(folder / "intrinsic" / "intrinsic_color.txt", color_4x4)
    depth_4x4 = np.eye(4)
    depth_4x4[:3, :3] = [[19.0, 0, 15.5], [0, 19.0, 11.5], [0, 0, 1]]
    write_matrix(folder / "intrinsic" / "intrinsic_depth.txt", depth_4x4)
    for index in range(12):
        pose = np.full((4, 4), -np.inf) if index == 4 else wall_pose(index)
        write_matrix(folder / "pose" / f"{index}.txt", pose)
        iio.imwrite(folder / "color" / f"{index}.jpg", noise_image(index))
        iio.imwrite(folder / "depth" / f"{index}.png", np.full((24, 32), 1800, dtype=np.uint16))
    return folder


def test_scannet_layout_natural_order_subset_depth_grid_and_z_up(tmp_path, capsys):
    folder = make_scannet(tmp_path / "scene0000_00")

    scene = load_scan(folder)
    assert [photo.name for photo in scene.photos] == [str(i) for i in range(12) if i != 4]
    assert scene.up == (0.0, 0.0, 1.0)
    # The preferred *_vh_clean_2.ply was chosen among the two meshes.
    assert len(scene.faces) == len(room_mesh().faces)
    photo = scene.photos[0]
    np.testing.assert_allclose(photo.camera.K, K)
    assert (photo.depth_camera.width, photo.depth_camera.height) == (32, 24)
    assert photo.depth_camera.K[0, 0] == pytest.approx(19.0)
    assert "1 non-finite" in warnings_of(capsys)[0]

    subset = load_scan(folder, SceneConfig(frames="0:12:3"))     # 0, 3, 6, 9 of the sorted list
    assert [photo.name for photo in subset.photos] == ["0", "3", "6", "9"]
    picked = load_scan(folder, SceneConfig(frames="10,2,-1"))
    assert [photo.name for photo in picked.photos] == ["10", "2", "11"]


def test_frame_subset_parses_slices_and_lists_and_rejects_bad_specs():
    assert frame_subset(10, None) == list(range(10))
    assert frame_subset(10, "2:8:2") == [2, 4, 6]
    assert frame_subset(10, "::4") == [0, 4, 8]
    assert frame_subset(10, "1, 3,-1") == [1, 3, 9]
    for bad in ("12", "a:b", "1:2:3:4", "5:5"):
        with pytest.raises(InputError, match="scene.frames"):
            frame_subset(10, bad)


def test_mesh_choice_prefers_config_and_rejects_ambiguous_or_missing_meshes(tmp_path):
    folder = make_7scenes(tmp_path / "kitchen")
    small = trimesh.creation.box(extents=(1, 1, 1))
    small.export(folder / "other.obj")
    with pytest.raises(InputError, match=r"several meshes \(other.obj, room.ply\); pick one with --mesh"):
        load_scan(folder)
    assert len(load_scan(folder, SceneConfig(mesh="other.obj")).faces) == len(small.faces)
    with pytest.raises(InputError, match="no such mesh file"):
        load_scan(folder, SceneConfig(mesh="nothing.ply"))
    (folder / "other.obj").unlink()
    (folder / "room.ply").unlink()
    with pytest.raises(InputError, match="no mesh found.*--mesh"):
        load_scan(folder)


def test_a_folder_of_no_known_layout_is_an_input_error(tmp_path):
    write_mesh(tmp_path / "room.ply")
    with pytest.raises(InputError, match="not a scan folder"):
        load_scan(tmp_path)


# --------------------------------------------------------------------------- NeRF


def test_nerf_converts_opengl_poses_so_the_looked_at_point_projects_to_the_image_centre(tmp_path, capsys):
    folder = tmp_path / "nerf"
    (folder / "images").mkdir(parents=True)
    write_mesh(folder / "room.ply")
    eye, target = np.array([0.5, -0.3, 0.2]), np.array([1.9, 0.7, 0.4])
    # An OpenGL pose written as a NeRF tool writes it: x right, y up, z back (away from the target).
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    gl_pose = np.eye(4)
    gl_pose[:3, 0], gl_pose[:3, 1], gl_pose[:3, 2], gl_pose[:3, 3] = right, up, -forward, eye
    broken = gl_pose.copy()
    broken[:3, :3] *= 2.0
    frames = [{"file_path": "images/r_0", "transform_matrix": gl_pose.tolist()},            # no extension
              {"file_path": "images/r_1.png", "transform_matrix": gl_pose.tolist(),
               "fl_x": 30.0, "fl_y": 30.0, "cx": 20.0, "cy": 10.0},                        # own intrinsics
              {"file_path": "images/r_2.png", "transform_matrix": broken.tolist()}]
    for index in range(3):
        iio.imwrite(folder / "images" / f"r_{index}.png", noise_image(index))
    (folder / "transforms.json").write_text(json.dumps({"camera_angle_x": 1.2, "frames": frames}))

    scene = load_scan(folder)

    assert [photo.name for photo in scene.photos] == ["images/r_0", "images/r_1.png"]
    assert "1 not rigid" in warnings_of(capsys)[0]
    assert scene.kind == "room"          # the camera stands inside the room's bounds
    camera = scene.photos[0].camera
    assert camera.K[0, 0] == pytest.approx(0.5 * WIDTH / math.tan(0.6))

    def project(camera: Camera, point: np.ndarray) -> np.ndarray:
        local = np.linalg.inv(camera.cam_to_world) @ np.append(point, 1.0)
        assert local[2] > 0, "the point must lie in front of the camera"
        return (camera.K @ (local[:3] / local[2]))[:2]

    np.testing.assert_allclose(project(camera, target), [(WIDTH - 1) / 2, (HEIGHT - 1) / 2], atol=1e-6)
    # A point above and to the right of the target (in the world) lands up and right in the image.
    u, v = project(camera, target + 0.2 * right + 0.2 * up)
    assert u > (WIDTH - 1) / 2 and v < (HEIGHT - 1) / 2
    # The frame's own intrinsics override the shared ones (pixel centres moved to integers).
    np.testing.assert_allclose(project(scene.photos[1].camera, target), [19.5, 9.5], atol=1e-6)
    np.testing.assert_allclose(OPENGL_TO_OPENCV @ OPENGL_TO_OPENCV, np.eye(4))


def test_up_is_perpendicular_to_the_cameras_x_axes_then_levelled_with_the_floor():
    # Handheld: everyone looks 30 degrees down at a table in front, yaw within +-45, rolls of +-3.
    cameras = []
    for index, yaw in enumerate(np.radians(np.linspace(-45, 45, 7))):
        pose = look_at(np.zeros(3), np.array([math.cos(yaw), math.sin(yaw), -math.tan(math.radians(30))]))
        roll = math.radians(3.0 if index % 2 else -3.0)
        spin = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
        pose[:3, :3] = pose[:3, :3] @ spin
        cameras.append(Camera(K=K, cam_to_world=pose, width=WIDTH, height=HEIGHT))
    # The mean image-up axis leans ~25 degrees towards the table; the x axes stay level.
    up = np.array(up_from_cameras(cameras))
    assert math.degrees(math.acos(up[2])) < 1.0

    tilted = (math.sin(math.radians(5)), 0.0, math.cos(math.radians(5)))
    room = room_mesh()
    levelled = level_with_floor(tilted, np.asarray(room.vertices), np.asarray(room.faces))
    np.testing.assert_allclose(levelled, (0.0, 0.0, 1.0), atol=1e-6)


# --------------------------------------------------------------------------- frame selection


def room_scene() -> Scene:
    mesh = room_mesh()
    return Scene(name="room", vertices=np.asarray(mesh.vertices), faces=np.asarray(mesh.faces), kind="room")


def wall_photos(folder: Path, blurry: set[int] = frozenset()) -> list[Photo]:
    """Photos 0..11 facing the four walls in turn (4-11 repeat 0-3 from other spots)."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for index in range(12):
        eye = (0.0, 0.0, 0.0) if index < 4 else (0.3 * (index % 3) - 0.3, 0.2 * (index % 2), 0.1)
        path = folder / f"{index}.png"
        iio.imwrite(path, noise_image(index, blur=2.5 if index in blurry else 0.0))
        camera = Camera(K=K, cam_to_world=wall_pose(index, eye), width=WIDTH, height=HEIGHT)
        photos.append(Photo(camera=camera, color_path=path, name=str(index)))
    return photos


def test_select_frames_covers_walls_greedily_within_the_cap_and_drops_blurry_frames(tmp_path):
    scene = room_scene()
    rasterizer = Rasterizer(scene.vertices, scene.faces)
    photos = wall_photos(tmp_path / "photos", blurry={0})
    rng = np.random.default_rng(0)

    chosen, report = select_frames(photos, rasterizer, n=4, rng=rng)

    assert report.dropped_blurry == 1 and "0" not in [photo.name for photo in chosen]
    assert len(chosen) == report.chosen == 4 and len({photo.name for photo in chosen}) == 4
    # Four picks in a four-walled room: greedy coverage faces four different walls.
    directions = {int(photo.name) % 4 for photo in chosen}
    assert directions == {0, 1, 2, 3}
    curve = report.coverage_curve
    assert all(later > earlier for earlier, later in zip(curve, curve[1:]))
    assert report.coverage == curve[-1] <= report.coverage_all + 1e-9 <= 1.0 + 1e-9
    assert report.coverage > 0.3          # four 64x48 views with ~77 degree fields of view

    fewer, fewer_report = select_frames(photos, rasterizer, n=2, rng=rng)
    assert len(fewer) == 2 and fewer_report.coverage < report.coverage
    assert [photo.name for photo in fewer] == [photo.name for photo in chosen[:2]]   # a prefix

    _, unfiltered = select_frames(photos, rasterizer, n=12, rng=rng, blur_filter=False)
    assert unfiltered.dropped_blurry == 0 and unfiltered.chosen <= 12
    assert unfiltered.coverage >= report.coverage


def test_select_frames_drops_undecodable_and_empty_views(tmp_path):
    scene = room_scene()
    rasterizer = Rasterizer(scene.vertices, scene.faces)
    photos = wall_photos(tmp_path / "photos")
    photos[1].color_path.write_bytes(photos[1].color_path.read_bytes()[:60])   # truncated PNG
    outside = look_at(np.array([0.0, 0.0, 10.0]), np.array([0.0, 0.0, 20.0]))   # looks away from the room
    photos[2] = Photo(camera=Camera(K=K, cam_to_world=outside, width=WIDTH, height=HEIGHT),
                      color_path=photos[2].color_path, name="outside")

    chosen, report = select_frames(photos, rasterizer, n=12, rng=np.random.default_rng(0), blur_filter=False)

    assert report.dropped_unreadable == 1 and report.dropped_empty == 1
    assert {"1", "outside"}.isdisjoint(photo.name for photo in chosen)


# --------------------------------------------------------------------------- photos as content


def test_content_target_resizes_the_photo_and_masks_off_mesh_and_disagreeing_depth(tmp_path):
    # A 2 m wide wall 2 m in front of the camera leaves the image's sides off the mesh.
    wall = trimesh.creation.box(extents=(2.0, 0.01, 4.0))
    wall.apply_translation((0.0, 2.0, 0.0))
    rasterizer = Rasterizer(np.asarray(wall.vertices), np.asarray(wall.faces))
    pose = look_at(np.array([0.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    camera = Camera(K=K, cam_to_world=pose, width=WIDTH, height=HEIGHT)
    gradient = np.repeat(np.linspace(0, 255, WIDTH)[None, :, None], HEIGHT, 0).repeat(3, 2).astype(np.uint8)
    iio.imwrite(tmp_path / "color.png", gradient)

    full = rasterizer(camera)
    depth_mm = (full.depth.numpy() * 1000).astype(np.uint16)
    depth_mm[10:20, 28:36] = depth_mm[10:20, 28:36] // 2          # an occluder the mesh lacks
    depth_mm[30:40, 28:36] = 0                                     # no measurement: unknown, kept
    iio.imwrite(tmp_path / "depth.png", depth_mm)
    photo = Photo(camera=camera, color_path=tmp_path / "color.png", depth_path=tmp_path / "depth.png")

    half = camera.scaled(HEIGHT // 2)
    fragments = rasterizer(half)
    target, valid = content_target(photo, half, fragments)

    assert target.shape == (3, HEIGHT // 2, WIDTH // 2) and valid.shape == (HEIGHT // 2, WIDTH // 2)
    expected = torch.from_numpy(gradient / np.float32(255.0)).permute(2, 0, 1)
    expected = expected.reshape(3, HEIGHT // 2, 2, WIDTH // 2, 2).mean(dim=(2, 4))   # 2x2 box filter
    assert (target - expected).abs().max() < 2 / 255
    assert not valid[~fragments.mask].any()
    assert not valid[5:10, 14:18].any()                        # occluder, at half resolution
    assert valid[15:20, 14:18].all()                           # unknown depth kept
    assert valid.sum() == fragments.mask.sum() - 20

    no_depth = Photo(camera=camera, color_path=photo.color_path)
    assert torch.equal(content_target(no_depth, half, fragments)[1], fragments.mask)


def test_colour_layout_holds_the_mesh_colours_while_the_photo_stays_the_content_target(tmp_path):
    # A red wall photographed blue (another exposure): the feature content compares with the photo,
    # the colour layout with the mesh's own red unless told to use the content target.
    wall = trimesh.creation.box(extents=(2.0, 0.01, 4.0))
    wall.apply_translation((0.0, 2.0, 0.0))
    vertices, faces = np.asarray(wall.vertices), np.asarray(wall.faces)
    uv = vertices[faces][..., [0, 2]] / np.array([2.0, 4.0]) + 0.5          # planar map, (F,3,2)
    rasterizer = Rasterizer(vertices, faces, uv)
    camera = Camera(K=K, cam_to_world=look_at(np.zeros(3), np.array([0.0, 1.0, 0.0])), width=WIDTH, height=HEIGHT)
    iio.imwrite(tmp_path / "color.png", np.broadcast_to(np.uint8([20, 40, 230]), (HEIGHT, WIDTH, 3)).copy())
    photo = Photo(camera=camera, color_path=tmp_path / "color.png")
    red = torch.tensor([0.8, 0.1, 0.1])[:, None, None].expand(3, 32, 32).contiguous()

    def targets(layout_target: str) -> list[PatchTarget]:
        config = StylizeConfig()
        config.loss.layout_target = layout_target
        pyramid = view_pyramids(rasterizer, [camera], pyramid_heights(config))[0]
        return train_view(pyramid, red, photo, "photo", config, depth_reference=2.0).targets

    held, compared = targets("mesh"), targets("content")
    assert held and len(held) == len(compared)
    for target in held:
        covered = target.patch.mask
        layout, where = target.layout()
        assert covered.any() and torch.equal(where[0, 0] > 0, covered)
        assert torch.allclose(layout[:, covered], red[:, :1, 0].expand(3, int(covered.sum())), atol=1e-3)
        assert target.content_image[2, covered].mean() > 0.8                # the photo's blue
    for target in compared:
        layout, where = target.layout()
        assert layout is target.content_image and where is target.content_weight


def test_content_target_reads_depth_on_its_own_grid_through_its_intrinsics(tmp_path):
    scene = room_scene()
    rasterizer = Rasterizer(scene.vertices, scene.faces)
    pose = wall_pose(0)
    camera = Camera(K=K, cam_to_world=pose, width=WIDTH, height=HEIGHT)
    # ScanNet-like: depth at 32x24 with a wider field of view than the colour camera.
    depth_camera = Camera(K=np.array([[12.0, 0, 15.5], [0, 12.0, 11.5], [0, 0, 1]]), cam_to_world=pose,
                          width=32, height=24)
    depth_mm = (rasterizer(depth_camera).depth.numpy() * 1000).astype(np.uint16)
    iio.imwrite(tmp_path / "color.png", noise_image(0))
    iio.imwrite(tmp_path / "depth.png", depth_mm)
    photo = Photo(camera=camera, color_path=tmp_path / "color.png", depth_path=tmp_path / "depth.png",
                  depth_camera=depth_camera)

    fragments = rasterizer(camera)
    assert content_target(photo, camera, fragments)[1].float().mean() > 0.97   # depths agree

    # Read as if on the colour grid, the wider depth image disagrees at the room's corners.
    misread = Photo(camera=camera, color_path=photo.color_path, depth_path=photo.depth_path)
    assert content_target(misread, camera, fragments)[1].float().mean() < 0.9


# --------------------------------------------------------------------------- texture size


def test_default_texture_size_is_the_smallest_power_of_two_reaching_the_density():
    scene = room_scene()                  # 59 m^2 of walls, floor and ceiling
    for density in (20.0, 50.0, 200.0):
        size = default_texture_size(scene, density)
        assert size & (size - 1) == 0
        assert size ** 2 * 0.6 >= 59.0 * density ** 2 > (size // 2) ** 2 * 0.6
    assert default_texture_size(scene, 200.0) == 2048
    assert default_texture_size(scene, 200.0, max_size=1500) == 1024
