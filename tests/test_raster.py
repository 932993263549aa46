"""Ray-cast fragments on meshes whose answers are known in closed form, and the on-disk cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at
from meshstyle.raster.fragments import FIELDS
from meshstyle.raster.rasterizer import Rasterizer, shade_samples, view_pyramids

UP_Y = np.array([0.0, 1.0, 0.0])


def unit_quad(uv_scale: float = 1.0, flip_winding: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The square [0,1]^2 in the z = 0 plane, UV = xy * uv_scale (texel density = uv_scale)."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    if flip_winding:
        faces = faces[:, ::-1].copy()
    uv = (vertices[faces][..., :2] * uv_scale).astype(np.float32)
    return vertices, faces, uv


def camera_above(distance: float, width: int = 64, height: int = 48, fov: float = 50.0,
                 target=(0.5, 0.5, 0.0)) -> Camera:
    """Looking straight down -z at `target`; image right = +x, image up = +y."""
    target = np.asarray(target, dtype=np.float64)
    eye = target + np.array([0.0, 0.0, distance])
    return Camera(K=intrinsics_from_fov(width, height, fov), cam_to_world=look_at(eye, target, UP_Y),
                  width=width, height=height)


def camera_tilted(tilt_deg: float, distance: float = 1.5, width: int = 65, height: int = 49) -> Camera:
    """Looking at the quad's centre from `tilt_deg` off its normal (odd size: a pixel on the axis)."""
    tilt = np.radians(tilt_deg)
    centre = np.array([0.5, 0.5, 0.0])
    eye = centre + distance * np.array([np.sin(tilt), 0.0, np.cos(tilt)])
    return Camera(K=intrinsics_from_fov(width, height, 20.0), cam_to_world=look_at(eye, centre, UP_Y),
                  width=width, height=height)


@pytest.mark.parametrize("flip_winding", [False, True])
def test_fragments_of_a_fronto_parallel_quad(flip_winding):
    vertices, faces, uv = unit_quad(flip_winding=flip_winding)
    camera = camera_above(0.8)
    fragments = Rasterizer(vertices, faces, uv)(camera)

    assert fragments.mask.all(), "the quad fills this view"
    assert set(fragments.face_id.unique().tolist()) == {0, 1}
    torch.testing.assert_close(fragments.depth, torch.full((48, 64), 0.8), atol=1e-5, rtol=0)
    # Normals face the camera whichever way the triangles wind.
    torch.testing.assert_close(fragments.normal, torch.tensor([0.0, 0.0, 1.0]).expand(48, 64, 3))
    torch.testing.assert_close(fragments.bary.sum(-1), torch.ones(48, 64))
    # UV = world xy of the surface point each pixel sees (z-depth times the pixel's ray).
    rows, cols = np.mgrid[0:48, 0:64]
    x = (cols - camera.K[0, 2]) / camera.K[0, 0]
    y = (rows - camera.K[1, 2]) / camera.K[1, 1]
    world = camera.center + 0.8 * (x[..., None] * camera.cam_to_world[:3, 0] + y[..., None] * camera.cam_to_world[:3, 1]
                                   + camera.cam_to_world[:3, 2])
    np.testing.assert_allclose(fragments.uv.numpy(), world[..., :2], atol=1e-5)
    np.testing.assert_allclose(fragments.cos_angle.numpy(), 1 / np.sqrt(1 + x ** 2 + y ** 2), atol=1e-5)
    assert fragments.uv.dtype == torch.float32 and fragments.face_id.dtype == torch.int64


def test_pixels_that_miss_are_empty():
    vertices, faces, uv = unit_quad()
    fragments = Rasterizer(vertices, faces, uv)(camera_above(1.5))
    miss = ~fragments.mask
    assert 0.3 < fragments.mask.float().mean() < 0.7
    assert (fragments.face_id[miss] == -1).all() and (fragments.face_id[~miss] >= 0).all()
    for name in ("uv", "bary", "depth", "normal", "cos_angle", "footprint"):
        assert (getattr(fragments, name)[miss] == 0).all(), name
    assert (fragments.depth[~miss] > 1.49).all()


def test_view_samples_from_face_ids_are_the_fragments_a_renderer_reads():
    vertices, faces, uv = unit_quad(uv_scale=0.7)
    rasterizer = Rasterizer(vertices, faces, uv)
    camera = camera_tilted(50.0, distance=2.5)          # the quad and some background
    [hits] = rasterizer.cast_cameras([camera])
    fragments, samples = rasterizer(camera), shade_samples(rasterizer, camera, hits.face_id)
    assert 0.2 < float(samples.mask.float().mean()) < 0.9
    assert torch.equal(samples.mask, fragments.mask)
    # The hit is recomputed in float64 from the face alone; Embree's float32 barycentrics differ slightly.
    for name in ("uv", "footprint", "cos_angle"):
        torch.testing.assert_close(getattr(samples, name), getattr(fragments, name), rtol=1e-4, atol=1e-6)
        assert (getattr(samples, name)[~samples.mask] == 0).all(), name


def test_footprint_is_proportional_to_depth_on_a_fronto_parallel_plane():
    vertices, faces, uv = unit_quad(uv_scale=0.5)   # half a texture unit per metre
    rasterizer = Rasterizer(vertices, faces, uv)
    for distance in (0.5, 0.8, 1.0):
        camera = camera_above(distance, fov=40.0)
        fragments = rasterizer(camera)
        assert fragments.mask.all()
        # One pixel covers depth / f metres everywhere on the plane, times 0.5 texture units per metre.
        expected = distance / camera.K[0, 0] * 0.5
        np.testing.assert_allclose(fragments.footprint.numpy(), expected, rtol=1e-4)


@pytest.mark.parametrize("tilt_deg", [0.0, 30.0, 60.0, 75.0])
def test_footprint_grows_as_one_over_cos_on_a_tilted_plane(tilt_deg):
    vertices, faces, uv = unit_quad()
    camera = camera_tilted(tilt_deg)
    fragments = Rasterizer(vertices, faces, uv)(camera)
    centre = (camera.height // 2, camera.width // 2)
    cos = np.cos(np.radians(tilt_deg))
    assert fragments.depth[centre] == pytest.approx(1.5, abs=1e-5)
    assert fragments.cos_angle[centre] == pytest.approx(cos, abs=1e-5)
    scale = float(fragments.footprint[centre]) * camera.K[0, 0] / 1.5
    assert scale == pytest.approx(1.0 / cos, rel=1e-4)


def test_pyramid_keeps_the_view_at_every_height():
    vertices, faces, uv = unit_quad()
    camera = camera_tilted(40.0, width=64, height=48)
    pyramid = Rasterizer(vertices, faces, uv).pyramid(camera, [24, 36, 54])
    assert pyramid.heights == [24, 36, 54]
    assert [level.width for level in pyramid.levels] == [32, 48, 72]
    assert pyramid.camera.height == 24
    # Same field of view: the covered share of the image and the depth range agree across levels.
    coverage = [float(level.mask.float().mean()) for level in pyramid.levels]
    assert max(coverage) - min(coverage) < 0.03
    depths = [(float(level.depth[level.mask].min()), float(level.depth[level.mask].max())) for level in pyramid.levels]
    np.testing.assert_allclose(depths, [depths[-1]] * 3, atol=0.03)
    with pytest.raises(ValueError):
        Rasterizer(vertices, faces, uv).pyramid(camera, [36, 24])


def test_render_many_equals_one_camera_at_a_time():
    mesh = trimesh.creation.icosphere(subdivisions=3)
    rasterizer = Rasterizer(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    cameras = [Camera(K=intrinsics_from_fov(40, 30, 50), cam_to_world=look_at(eye, np.zeros(3)), width=40, height=30)
               for eye in ([3.0, 0, 0.5], [0, 3.0, 1.0], [-2.5, -2.0, 0.0])]
    together = rasterizer.render_many(cameras)
    for camera, fragments in zip(cameras, together):
        alone = rasterizer(camera)
        for name in FIELDS:
            assert torch.equal(getattr(fragments, name), getattr(alone, name)), name
    assert all(0.1 < float(f.mask.float().mean()) < 0.9 for f in together)


def test_view_pyramid_cache_hits_and_misses(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=3)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    uv = (vertices[faces][..., :2] * 0.25 + 0.5).astype(np.float32)
    cameras = [Camera(K=intrinsics_from_fov(40, 30, 50), cam_to_world=look_at(eye, np.zeros(3)), width=40, height=30)
               for eye in ([3.0, 0, 0.5], [0, 3.0, 1.0])]
    heights = [30, 45]
    folder = tmp_path / "fragments"

    first = view_pyramids(Rasterizer(vertices, faces, uv), cameras, heights, cache_dir=tmp_path)
    entries = set(folder.iterdir())
    assert len(entries) == 2

    # Same mesh, atlas and cameras: read back without building the ray-casting scene at all.
    again = Rasterizer(vertices, faces, uv)
    second = view_pyramids(again, cameras, heights, cache_dir=tmp_path)
    assert again._scene is None, "a cache hit must not cast rays"
    assert set(folder.iterdir()) == entries
    for a, b in zip(first, second):
        assert a.heights == b.heights
        for level_a, level_b in zip(a.levels, b.levels):
            for name in FIELDS:
                assert torch.equal(getattr(level_a, name), getattr(level_b, name)), name

    # Any change of camera, geometry, atlas or heights misses.
    moved_pose = cameras[0].cam_to_world.copy()
    moved_pose[0, 3] += 0.01
    moved = Camera(K=cameras[0].K, cam_to_world=moved_pose, width=40, height=30)
    changes = [
        (Rasterizer(vertices, faces, uv), [moved], heights),
        (Rasterizer(vertices * 1.001, faces, uv), cameras[:1], heights),
        (Rasterizer(vertices, faces, uv + 0.01), cameras[:1], heights),
        (Rasterizer(vertices, faces, uv), cameras[:1], [30, 60]),
    ]
    for rasterizer, views, level_heights in changes:
        before = len(list(folder.iterdir()))
        view_pyramids(rasterizer, views, level_heights, cache_dir=tmp_path)
        assert rasterizer._scene is not None
        assert len(list(folder.iterdir())) == before + 1

    # A damaged entry is recomputed, not trusted.
    broken = sorted(entries)[0]
    broken.write_bytes(b"not an npz")
    repaired = view_pyramids(Rasterizer(vertices, faces, uv), cameras, heights, cache_dir=tmp_path)
    for a, b in zip(first, repaired):
        assert torch.equal(a.levels[1].uv, b.levels[1].uv)


def test_rasterizer_rejects_mismatched_uv():
    vertices, faces, uv = unit_quad()
    with pytest.raises(ValueError):
        Rasterizer(vertices, faces, uv[:1])
