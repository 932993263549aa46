"""Rendering views, videos and contact sheets, and camera trajectories, on real small meshes."""
from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at
from meshstyle.errors import InputError
from meshstyle.common.io import read_image
from meshstyle.raster.rasterizer import Rasterizer
from meshstyle.outputs.render import (AMBIENT, PackedMipmap, ViewRenderer, contact_sheet, psnr, render_fragments,
                              render_views, write_video, write_views, write_views_and_video)
from meshstyle.geometry.scene import TexturedMesh
from meshstyle.stylization.texture import sample
from meshstyle.views.trajectories import read_cameras, trajectory, write_cameras

RED, GREEN, BLUE, YELLOW = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0)


# --- small real meshes and cameras ---------------------------------------------------------------

def quad(corners: np.ndarray, texture: np.ndarray) -> TexturedMesh:
    """A textured quad; corners in the order of UV (0,0), (1,0), (1,1), (0,1) (OBJ convention)."""
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    corner_uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)
    return TexturedMesh(vertices=np.asarray(corners, dtype=np.float64), faces=faces,
                        uv=corner_uv[faces], texture=texture.astype(np.float32))


def facing_quad(texture: np.ndarray, half: float = 1.0, depth: float = 2.0) -> TexturedMesh:
    """A quad at z = depth in front of a camera at the origin looking down +z (OpenCV axes)."""
    # Image up is -y: UV (0,0), the texture's bottom-left, sits at the image's bottom-left.
    return quad(np.array([[-half, half, depth], [half, half, depth], [half, -half, depth], [-half, -half, depth]]),
                texture)


def camera(eye, target, width: int = 64, height: int = 48, fov_deg: float = 60.0, up=(0.0, 0.0, 1.0)) -> Camera:
    return Camera(K=intrinsics_from_fov(width, height, fov_deg),
                  cam_to_world=look_at(np.asarray(eye, float), np.asarray(target, float), np.asarray(up, float)),
                  width=width, height=height)


def origin_camera(width: int = 64, height: int = 48, fov_deg: float = 60.0) -> Camera:
    return Camera(K=intrinsics_from_fov(width, height, fov_deg), cam_to_world=np.eye(4), width=width, height=height)


def four_colour_texture(size: int = 32) -> np.ndarray:
    texture = np.zeros((size, size, 3), dtype=np.float32)
    half = size // 2
    texture[:half, :half], texture[:half, half:] = RED, GREEN          # top row of the image: v = 1
    texture[half:, :half], texture[half:, half:] = BLUE, YELLOW
    return texture


def striped_floor(side: float = 40.0, texels: int = 512) -> TexturedMesh:
    """A square floor (z = 0) receding along +y with black/white stripes across the view direction.

    Square in the world and in the texture, so texels are square on the surface (the footprint's
    texel density is per face, not per direction).
    """
    rows = np.arange(texels) // 2 % 2                # stripes two texels wide: 6.4 per metre
    texture = np.repeat(rows.astype(np.float32)[:, None, None], texels, axis=1).repeat(3, axis=2)
    half = side / 2
    return quad(np.array([[-half, 0.5, 0], [half, 0.5, 0], [half, side + 0.5, 0], [-half, side + 0.5, 0]]), texture)


def floor_camera(width: int = 96, height: int = 64) -> Camera:
    return camera(eye=(0, 0, 1.0), target=(0, 10, 0.3), width=width, height=height)


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


# --- colours, mip-mapping, anti-aliasing, shading -------------------------------------------------

def test_known_texture_renders_expected_colours_at_known_pixels(cache_dir):
    mesh = facing_quad(four_colour_texture())
    # At z = 2 with a 60 degree field of view the quad spans the middle 0.87 of the image height.
    [image] = render_views(mesh, [origin_camera()], background=(0.5, 0.5, 0.5), cache_dir=cache_dir)
    assert image.shape == (48, 64, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[14, 22], RED, atol=0.02)      # top-left of the view
    np.testing.assert_allclose(image[14, 42], GREEN, atol=0.02)    # top-right
    np.testing.assert_allclose(image[34, 22], BLUE, atol=0.02)     # bottom-left
    np.testing.assert_allclose(image[34, 42], YELLOW, atol=0.02)   # bottom-right
    np.testing.assert_allclose(image[1, 1], (0.5, 0.5, 0.5), atol=1e-6)   # background


def test_mip_level_grows_with_depth_on_a_receding_floor():
    mesh = striped_floor()
    fragments = Rasterizer(mesh.vertices, mesh.faces, mesh.uv)(floor_camera())
    texture_size = mesh.texture.shape[0]
    level = torch.log2(fragments.footprint * texture_size)[fragments.mask].numpy()
    depth = fragments.depth[fragments.mask].numpy()
    edges = np.quantile(depth, np.linspace(0, 1, 6))
    per_bin = [np.median(level[(depth >= lo) & (depth <= hi)]) for lo, hi in zip(edges[:-1], edges[1:])]
    assert np.all(np.diff(per_bin) > 0.3), per_bin          # farther bins sample coarser levels
    assert per_bin[-1] - per_bin[0] > 2.0, per_bin


def test_mip_mapping_removes_aliasing_on_a_striped_far_floor(cache_dir):
    mesh, view = striped_floor(), floor_camera()
    reference = next(render_views(mesh, [view], mip=False, supersample=8, cache_dir=cache_dir))
    with_mip = next(render_views(mesh, [view], mip=True, cache_dir=cache_dir))
    without_mip = next(render_views(mesh, [view], mip=False, cache_dir=cache_dir))
    floor = np.zeros(reference.shape[:2], dtype=bool)
    floor[view.height // 2 + 4:] = True      # below the horizon: the floor, ever finer stripes upwards
    mse_mip = np.mean((with_mip - reference)[floor] ** 2)
    mse_plain = np.mean((without_mip - reference)[floor] ** 2)
    assert mse_mip < 0.25 * mse_plain, (mse_mip, mse_plain)


def test_shading_darkens_oblique_surfaces(cache_dir):
    white = np.ones((8, 8, 3), dtype=np.float32)
    facing = facing_quad(white, half=3.0)
    tilt = np.radians(60)
    # The same quad turned 60 degrees about the vertical (camera y) axis, through its centre.
    corners = facing.vertices - [0, 0, 2]
    rotation = np.array([[np.cos(tilt), 0, np.sin(tilt)], [0, 1, 0], [-np.sin(tilt), 0, np.cos(tilt)]])
    oblique = TexturedMesh(corners @ rotation.T + [0, 0, 2], facing.faces, facing.uv, facing.texture)
    view = origin_camera()
    centre = (view.height // 2, view.width // 2)
    shaded_facing = next(render_views(facing, [view], shading=True, cache_dir=cache_dir))[centre]
    shaded_oblique = next(render_views(oblique, [view], shading=True, cache_dir=cache_dir))[centre]
    flat_oblique = next(render_views(oblique, [view], shading=False, cache_dir=cache_dir))[centre]
    np.testing.assert_allclose(flat_oblique, 1.0, atol=1e-5)
    np.testing.assert_allclose(shaded_facing, 1.0, atol=0.01)
    # Headlight Lambert: ambient + diffuse * cos(view angle); the centre ray is at 60 degrees.
    np.testing.assert_allclose(shaded_oblique, AMBIENT + (1 - AMBIENT) * 0.5, atol=0.02)


def test_supersampling_antialiases_edges(cache_dir):
    mesh = facing_quad(np.zeros((4, 4, 3), dtype=np.float32), half=0.7)
    tilted = TexturedMesh(mesh.vertices @ np.array([[0.96, -0.28, 0], [0.28, 0.96, 0], [0, 0, 1.0]]).T,
                          mesh.faces, mesh.uv, mesh.texture)
    plain = next(render_views(tilted, [origin_camera()], cache_dir=cache_dir))
    smooth = next(render_views(tilted, [origin_camera()], supersample=4, cache_dir=cache_dir))
    partial = lambda image: np.count_nonzero((image[..., 0] > 0.05) & (image[..., 0] < 0.95))  # noqa: E731
    assert partial(plain) == 0            # hard edges: every pixel is quad or background
    assert partial(smooth) > 40           # blended edge pixels along the quad's outline
    assert psnr(plain, smooth) > 15       # and otherwise the same picture


def bumpy_sheet(rng: np.random.Generator, cells: int = 6) -> TexturedMesh:
    """A wavy square sheet (z up) of 2 x cells^2 triangles, UVs from x and y, a smooth random texture."""
    ticks = np.linspace(-1, 1, cells + 1)
    grid = np.stack(np.meshgrid(ticks, ticks, indexing="xy"), -1).reshape(-1, 2)
    vertices = np.column_stack([grid, 0.2 * np.sin(3 * grid[:, 0]) * np.cos(2 * grid[:, 1])])
    index = np.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    corners = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], -1).reshape(-1, 4)
    faces = np.concatenate([corners[:, [0, 1, 2]], corners[:, [0, 2, 3]]])
    uv = ((vertices[:, :2] + 1) / 2).astype(np.float32)[faces]
    smooth = np.cumsum(np.cumsum(rng.random((64, 64, 3)), 0), 1)
    texture = ((smooth - smooth.min((0, 1))) / np.ptp(smooth, (0, 1))).astype(np.float32)
    return TexturedMesh(vertices, faces, uv, texture)


@pytest.mark.parametrize("shape", [(3, 64, 64), (3, 37, 80)])
def test_packed_mipmap_reads_the_same_colours_as_texture_sample(shape):
    generator = torch.Generator().manual_seed(0)
    texture = torch.rand(shape, generator=generator)
    uv = torch.rand(2, 24, 32, 2, generator=generator) * 1.2 - 0.1      # also beyond the border
    footprint = torch.exp(torch.rand(2, 24, 32, generator=generator) * 12 - 9) / 8
    footprint[0, 0, :4] = 0.0                                             # finest level
    footprint[0, 1, :4] = float("inf")                                    # coarsest level
    packed = PackedMipmap(texture)
    torch.testing.assert_close(packed.sample(uv, footprint), sample(texture, uv, footprint), rtol=0, atol=1e-5)
    torch.testing.assert_close(packed.sample(uv), sample(texture, uv), rtol=0, atol=1e-5)


def test_render_fragments_shades_like_the_view_renderer(cache_dir):
    mesh = bumpy_sheet(np.random.default_rng(2))
    view = camera(eye=(0.4, -1.5, 1.4), target=(0, 0, 0))
    fragments = Rasterizer(mesh.vertices, mesh.faces, mesh.uv)(view)
    texture = torch.from_numpy(mesh.texture).permute(2, 0, 1).requires_grad_()
    image = render_fragments(texture, fragments, shading=True, background=(0.2, 0.3, 0.4))
    image.sum().backward()
    assert texture.grad is not None and texture.grad.abs().sum() > 0     # differentiable in the texture
    [rendered] = render_views(mesh, [view], shading=True, background=(0.2, 0.3, 0.4), cache_dir=cache_dir)
    np.testing.assert_allclose(image.detach().permute(1, 2, 0).numpy(), rendered, atol=1e-4)


def test_renders_from_two_threads_at_once_match_renders_in_turn():
    from concurrent.futures import ThreadPoolExecutor

    mesh = bumpy_sheet(np.random.default_rng(3))
    views = [camera(eye=(0.2 * k - 0.5, -1.6, 1.8), target=(0, 0, 0)) for k in range(6)]
    in_turn = list(render_views(mesh, views, shading=True, cache=False))
    with ThreadPoolExecutor(2) as pool:
        results = [pool.submit(lambda: list(render_views(mesh, views, shading=True, cache=False))) for _ in range(2)]
        for result in results:
            for alone, threaded in zip(in_turn, result.result()):
                np.testing.assert_array_equal(alone, threaded)


def test_cameras_of_different_sizes_render_at_their_own_sizes(cache_dir):
    mesh = facing_quad(four_colour_texture())
    views = [origin_camera(64, 48), origin_camera(33, 21), origin_camera(64, 48).scaled(24)]
    frames = list(render_views(mesh, views, cache_dir=cache_dir))
    assert [frame.shape for frame in frames] == [(48, 64, 3), (21, 33, 3), (24, 32, 3)]


# --- files: GLB round trip, cache, PNG / MP4 outputs ----------------------------------------------

def test_glb_round_trip_renders_like_the_mesh_in_memory(tmp_path, cache_dir):
    from meshstyle.inputs.textured import read_textured
    from meshstyle.outputs.export import write_glb

    mesh = bumpy_sheet(np.random.default_rng(0))
    write_glb(mesh, tmp_path / "mesh.glb")
    loaded = read_textured(tmp_path / "mesh.glb")
    views = [camera(eye=(0.3, -1.6, 2.2), target=(0, 0, 0)), camera(eye=(-1.5, 0.4, 1.8), target=(0, 0, 0))]
    for in_memory, from_file in zip(render_views(mesh, views, cache=False), render_views(loaded, views, cache=False)):
        assert psnr(in_memory, from_file) >= 40


def test_second_render_of_a_trajectory_reuses_cached_ray_hits(cache_dir):
    mesh = facing_quad(four_colour_texture())
    views = [camera(eye=(x, 0.2, -1.0), target=(0, 0, 2), up=(0, -1, 0)) for x in (-0.5, 0.0, 0.5)]
    first = ViewRenderer(mesh, cache_dir=cache_dir)
    first_frames = list(first.render(views))
    assert (first.cache_hits, first.cache_misses) == (0, 3)
    again = ViewRenderer(mesh, cache_dir=cache_dir)
    again_frames = list(again.render(views))
    assert (again.cache_hits, again.cache_misses) == (3, 0)
    for a, b in zip(first_frames, again_frames):
        np.testing.assert_array_equal(a, b)
    # Another texture on the same geometry still hits; a moved camera or changed mesh misses.
    list(again.render(views, texture=1 - mesh.texture))
    assert again.cache_hits == 6
    moved = camera(eye=(0.1, 0.2, -1.0), target=(0, 0, 2), up=(0, -1, 0))
    list(again.render([moved]))
    assert again.cache_misses == 1
    shifted = TexturedMesh(mesh.vertices + 0.01, mesh.faces, mesh.uv, mesh.texture)
    other = ViewRenderer(shifted, cache_dir=cache_dir)
    list(other.render(views))
    assert (other.cache_hits, other.cache_misses) == (0, 3)


def test_damaged_render_cache_entries_are_recomputed(cache_dir):
    mesh = facing_quad(four_colour_texture())
    views = [camera(eye=(x, 0.2, -1.0), target=(0, 0, 2), up=(0, -1, 0)) for x in (-0.5, 0.0, 0.5, 0.3)]
    first = list(ViewRenderer(mesh, cache_dir=cache_dir).render(views))
    entries = sorted((cache_dir / "render").glob("*.npy"))
    assert len(entries) == 4
    (cache_dir / "render" / "older-format.npz").write_bytes(b"samples of the previous cache format")
    entries[0].write_bytes(b"not a numpy file")
    np.save(entries[1], np.zeros(7, dtype=np.int32))                                # wrong size
    np.save(entries[2], np.full(48 * 64, len(mesh.faces), dtype=np.int32))         # no such face
    np.save(entries[3], np.zeros(48 * 64, dtype=np.float32))                        # wrong type
    again = ViewRenderer(mesh, cache_dir=cache_dir)
    for a, b in zip(first, again.render(views)):
        np.testing.assert_array_equal(a, b)
    assert (again.cache_hits, again.cache_misses) == (0, 4)
    assert not (cache_dir / "render" / "older-format.npz").exists()
    third = ViewRenderer(mesh, cache_dir=cache_dir)
    list(third.render(views))
    assert (third.cache_hits, third.cache_misses) == (4, 0)


def marked_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """Grey frames with the frame index written as the colour of a block in the middle."""
    frames = []
    for index in range(count):
        frame = np.full((height, width, 3), 0.5, dtype=np.float32)
        frame[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = index_colour(index)
        frames.append(frame)
    return frames


def index_colour(index: int) -> tuple[float, float, float]:
    return (index % 2, index // 2 % 2, index // 4 % 2)


def test_png_views_have_count_size_and_order(tmp_path):
    frames = marked_frames(5, 33, 47)
    paths = write_views(iter(frames), tmp_path / "views", start=3)
    assert [path.name for path in paths] == ["0003.png", "0004.png", "0005.png", "0006.png", "0007.png"]
    assert sorted(path.name for path in (tmp_path / "views").iterdir()) == [path.name for path in paths]
    for index, path in enumerate(paths):
        image = read_image(path)
        assert image.shape == (33, 47, 3)
        np.testing.assert_allclose(image[16, 23], index_colour(index), atol=1 / 255)


def test_video_has_count_size_and_order_and_odd_sizes_are_padded(tmp_path):
    frames = marked_frames(8, 37, 51)   # odd both ways: libx264 needs even sizes
    count = write_video(iter(frames), tmp_path / "fly.mp4", fps=12)
    decoded = list(iio.imiter(tmp_path / "fly.mp4", plugin="FFMPEG"))
    assert count == len(decoded) == 8
    assert decoded[0].shape == (38, 52, 3)            # padded by one row and column, not rescaled
    for index, frame in enumerate(decoded):
        np.testing.assert_allclose(frame[18, 25] / 255.0, index_colour(index), atol=0.12)
        np.testing.assert_allclose(frame[2, 2] / 255.0, 0.5, atol=0.05)
    assert not list(tmp_path.glob(".*tmp*"))          # no temporary file left behind


def test_views_and_video_come_from_one_pass_over_a_render(tmp_path, cache_dir):
    mesh = facing_quad(four_colour_texture())
    views = [camera(eye=(x, 0.0, -0.5), target=(0, 0, 2), up=(0, -1, 0), width=40, height=30)
             for x in np.linspace(-0.6, 0.6, 4)]
    paths = write_views_and_video(render_views(mesh, views, cache_dir=cache_dir), tmp_path / "views",
                                  tmp_path / "fly.mp4", fps=10)
    assert [path.name for path in paths] == ["0000.png", "0001.png", "0002.png", "0003.png"]
    decoded = list(iio.imiter(tmp_path / "fly.mp4", plugin="FFMPEG"))
    assert len(decoded) == 4 and decoded[0].shape == (30, 40, 3)
    views = [read_image(path) for path in paths]
    for index, frame in enumerate(decoded):
        # Lossy colour (4:2:0 chroma) blurs the quad's sharp colour edges, so match rather than equal.
        similarity = [psnr(view, frame / 255.0) for view in views]
        assert int(np.argmax(similarity)) == index and similarity[index] > 18, similarity


def test_contact_sheet_places_style_then_content_and_stylized_pairs():
    style = np.zeros((40, 80, 3), dtype=np.float32)
    style[..., 2] = 1.0
    pairs = [(np.full((30, 40, 3), RED, np.float32), np.full((30, 40, 3), GREEN, np.float32))] * 3
    sheet = contact_sheet(style, pairs, labels=False, cell_height=60, pairs_per_row=2, margin=10)
    # Rows: style, two pairs, one pair; each row is 60 high with 10 px margins.
    assert sheet.shape == (10 + 3 * 70, 10 + 2 * (80 + 5 + 80) + 20 + 10, 3)
    np.testing.assert_allclose(sheet[40, 80], (0, 0, 1), atol=0.01)          # style image
    np.testing.assert_allclose(sheet[40, 200], (1, 1, 1), atol=0.01)         # white ground beside it
    np.testing.assert_allclose(sheet[110, 50], RED, atol=0.01)               # content 1
    np.testing.assert_allclose(sheet[110, 135], GREEN, atol=0.01)            # stylized 1
    np.testing.assert_allclose(sheet[110, 235], RED, atol=0.01)              # content 2
    np.testing.assert_allclose(sheet[180, 135], GREEN, atol=0.01)            # stylized 3
    np.testing.assert_allclose(sheet[180, 235], (1, 1, 1), atol=0.01)        # no fourth pair
    labelled = contact_sheet(style, pairs, labels=True, cell_height=60, pairs_per_row=2, margin=10)
    assert labelled.shape[0] > sheet.shape[0]
    assert (labelled[:10 + 14, 10:60] < 0.5).any()                          # "style" written above it


def test_psnr_of_known_errors_and_masks():
    a = np.zeros((4, 6, 3), dtype=np.float32)
    b = a + 0.1
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    b[:2] = 1.0
    mask = np.zeros((4, 6), dtype=bool)
    mask[2:] = True
    assert psnr(a, b, mask) == pytest.approx(20.0, abs=1e-4)
    assert psnr(torch.from_numpy(a).permute(2, 0, 1), torch.from_numpy(b).permute(2, 0, 1), mask) == \
        pytest.approx(20.0, abs=1e-4)
    assert psnr(a, a) == float("inf")


# --- trajectories ---------------------------------------------------------------------------------

def test_camera_json_round_trip_and_resizing_keeps_the_field_of_view(tmp_path):
    views = [camera(eye=(np.cos(t), np.sin(t), 0.5), target=(0, 0, 0), width=64, height=48, fov_deg=50)
             for t in np.linspace(0, 2, 5)]
    write_cameras(tmp_path / "path.json", views)
    mesh = facing_quad(four_colour_texture())
    loaded = trajectory(str(tmp_path / "path.json"), mesh=mesh, run_cameras=None)
    assert len(loaded) == 5
    for original, back in zip(views, loaded):
        np.testing.assert_allclose(back.K, original.K)
        np.testing.assert_allclose(back.cam_to_world, original.cam_to_world)
        assert (back.width, back.height) == (64, 48)
    bigger = trajectory(str(tmp_path / "path.json"), mesh=mesh, width=128, height=96)
    fov = lambda cam: 2 * np.degrees(np.arctan(0.5 * cam.height / cam.K[1, 1]))  # noqa: E731
    assert (bigger[0].width, bigger[0].height) == (128, 96)
    assert fov(bigger[0]) == pytest.approx(50.0)
    wider = trajectory(str(tmp_path / "path.json"), mesh=mesh, width=96, height=48, fov_deg=70)
    assert fov(wider[0]) == pytest.approx(70.0)
    assert wider[0].K[0, 0] == pytest.approx(wider[0].K[1, 1])      # square pixels kept
    assert wider[0].K[0, 2] == pytest.approx(47.5)                  # principal point stays central


def test_nerf_transforms_are_converted_from_opengl_axes(tmp_path):
    target = np.array([0.2, -0.1, 0.3])
    eyes = [np.array([2.0, 0.0, 1.0]), np.array([0.0, 2.0, 1.5]), np.array([np.nan, 0, 0])]
    frames = []
    for eye in eyes:
        pose_cv = look_at(eye, target) if np.isfinite(eye).all() else np.full((4, 4), np.nan)
        pose_gl = pose_cv @ np.diag([1.0, -1.0, -1.0, 1.0])      # how NeRF tools store the same camera
        frames.append({"file_path": "./images/r_0", "transform_matrix": pose_gl.tolist()})
    transforms = {"camera_angle_x": np.radians(60), "w": 80, "h": 60, "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(transforms, allow_nan=True))
    cameras = read_cameras(tmp_path / "transforms.json")
    assert len(cameras) == 2                                   # the non-finite pose is skipped
    for cam, eye in zip(cameras, eyes):
        np.testing.assert_allclose(cam.center, eye)
        # The target projects to the image centre, in front of the camera, with world up pointing up.
        in_camera = np.linalg.inv(cam.cam_to_world) @ np.append(target, 1.0)
        pixel = cam.K @ in_camera[:3]
        assert in_camera[2] > 0
        np.testing.assert_allclose(pixel[:2] / pixel[2], [39.5, 29.5], atol=1e-6)
        assert (cam.cam_to_world[:3, 1] @ [0, 0, 1]) < 0      # camera y (down) points against world up
        assert cam.K[0, 0] == pytest.approx(40 / np.tan(np.radians(30)))
    resampled = trajectory(str(tmp_path / "transforms.json"), mesh=facing_quad(four_colour_texture()),
                           frames=2, width=40, height=30)
    assert [(c.width, c.height) for c in resampled] == [(40, 30)] * 2


def test_bad_camera_files_name_the_file(tmp_path):
    mesh = facing_quad(four_colour_texture())
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match="broken.json"):
        trajectory(str(broken), mesh=mesh)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"K": [[1, 0], [0, 1]], "cam_to_world": np.eye(4).tolist(), "width": 4, "height": 4}]))
    with pytest.raises(InputError, match="wrong.json: camera 0"):
        trajectory(str(wrong), mesh=mesh)
    with pytest.raises(InputError, match="missing.json"):
        trajectory(str(tmp_path / "missing.json"), mesh=mesh)
    with pytest.raises(InputError, match="trajectory"):
        trajectory("trajectory", mesh=mesh, run_cameras=None)


def test_run_trajectory_is_resampled_smoothly_to_the_requested_frames_and_size():
    keyframes = [camera(eye=(2 * np.cos(t), 2 * np.sin(t), 0.5), target=(0, 0, 0), width=64, height=48, fov_deg=50)
                 for t in np.linspace(0, 1.5, 4)]
    path = trajectory("trajectory", mesh=facing_quad(four_colour_texture()), run_cameras=keyframes,
                      frames=10, width=32, height=24)
    assert len(path) == 10 and all((c.width, c.height) == (32, 24) for c in path)
    np.testing.assert_allclose(path[0].cam_to_world, keyframes[0].cam_to_world, atol=1e-9)
    np.testing.assert_allclose(path[-1].cam_to_world, keyframes[-1].cam_to_world, atol=1e-9)
    steps = np.linalg.norm(np.diff([c.center for c in path], axis=0), axis=1)
    assert steps.max() < 1.6 * steps.min()          # evenly spread along the path, no jumps
    radii = np.linalg.norm([c.center[:2] for c in path], axis=1)
    np.testing.assert_allclose(radii, 2.0, atol=0.05)   # a smooth spline stays near the circle


def test_generated_orbit_frames_see_the_mesh(cache_dir):
    mesh = facing_quad(four_colour_texture())
    path = trajectory("orbit", mesh=mesh, frames=6, width=40, height=30, fov_deg=50)
    assert len(path) == 6 and all((c.width, c.height) == (40, 30) for c in path)
    renderer = ViewRenderer(mesh, cache=False)
    covered = [float(view.mask.float().mean()) for view in renderer.samples(path)]
    assert min(covered) > 0.05, covered


def two_part_room() -> TexturedMesh:
    """A 4 x 5 x 2.7 m room (normals inward) split by a full-height wall at y = 2.5 with a 1 m wide
    opening at x > 3: a path between the halves must go through the opening."""
    import trimesh

    def box(extents, centre):
        return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(centre))

    shell = box((4, 5, 2.7), (2, 2.5, 1.35))
    shell.invert()
    room = trimesh.util.concatenate([shell.subdivide().subdivide(), box((3, 0.1, 2.7), (1.5, 2.5, 1.35))])
    faces = np.asarray(room.faces)
    return TexturedMesh(np.asarray(room.vertices), faces, np.zeros((len(faces), 3, 2), np.float32),
                        np.ones((2, 2, 3), np.float32))


def test_walkthrough_is_a_smooth_path_through_free_space_of_a_room():
    room = two_part_room()
    path = trajectory("walkthrough", mesh=room, frames=240, width=32, height=24, rng=np.random.default_rng(3))
    assert len(path) == 240 and all((c.width, c.height) == (32, 24) for c in path)
    eyes = np.stack([c.center for c in path])
    rasterizer = Rasterizer(room.vertices, room.faces)
    assert rasterizer.distance(eyes).min() > 0.05
    legs = rasterizer.cast(eyes[:-1], np.diff(eyes, axis=0))
    assert np.all(legs.distance >= 1.0)                       # no step passes through a surface
    steps = np.linalg.norm(np.diff(eyes, axis=0), axis=1)
    assert steps.max() < 0.2 and steps.max() < 4 * np.median(steps)          # moving, without jumps
    assert (eyes[:, 1] < 2.3).any() and (eyes[:, 1] > 2.7).any()             # visits both halves
