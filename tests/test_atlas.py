"""UV atlas: kept or unwrapped, texel rasterization, baking the mesh's own colours, gutters, cache."""
from __future__ import annotations

import time

import numpy as np
import open3d as o3d
import pytest
import trimesh

from meshstyle.atlas.unwrap import (atlas_info, bake_texture, fill_gutter, make_atlas, project_charts,
                             rasterize_atlas, split_to_manifold)
from meshstyle.config import SceneConfig
from meshstyle.geometry.scene import Appearance, Scene


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHSTYLE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "atlas"


def sphere_scene(subdivisions: int = 2) -> Scene:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.5)
    colours = (sphere.vertices * 0.4 + 0.75).astype(np.float32)  # ramp over the ball, never grey 0.5
    return Scene("ball", np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int64),
                 Appearance(vertex_colors=colours))


def overlap_share(uv: np.ndarray, size: int) -> float:
    """Share of covered texels that two faces claim, counted by rasterizing the faces one by one."""
    claims = np.zeros((size, size), dtype=int)
    for start in range(0, len(uv), 64):
        face_id, _ = rasterize_atlas(uv[start:start + 64], size)
        claims += face_id >= 0
    return float((claims > 1).sum() / max((claims > 0).sum(), 1))


def test_rasterize_atlas_puts_v_up_and_interpolates_uv_exactly():
    # One triangle in the lower-left half of the texture: u + v <= 1.
    uv = np.array([[[0, 0], [1, 0], [0, 1]]], dtype=np.float32)
    face_id, bary = rasterize_atlas(uv, 8)
    rows, cols = np.mgrid[0:8, 0:8]
    u, v = (cols + 0.5) / 8, 1 - (rows + 0.5) / 8
    assert np.array_equal(face_id >= 0, u + v <= 1)      # row 0 is the top (v = 1): mostly empty
    assert face_id[7, 0] == 0 and face_id[0, 7] == -1
    covered = face_id >= 0
    interpolated = np.einsum("pc,cd->pd", bary[covered], uv[0])
    assert np.allclose(interpolated, np.stack([u[covered], v[covered]], axis=1), atol=1e-6)
    assert np.allclose(bary[covered].sum(axis=1), 1)


def test_rasterize_atlas_covers_a_full_quad_and_large_sizes_quickly():
    uv = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]], dtype=np.float32)
    face_id, _ = rasterize_atlas(uv, 64)
    assert (face_id >= 0).all() and set(np.unique(face_id)) == {0, 1}
    # Many small faces on a large atlas: a 200x200 grid of quads (80k faces) at 2048^2.
    grid = np.stack(np.meshgrid(np.arange(201), np.arange(201), indexing="xy"), axis=-1).reshape(-1, 2) / 200
    index = np.arange(201 * 201).reshape(201, 201)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, 1:].ravel(), index[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    started = time.perf_counter()
    face_id, _ = rasterize_atlas(grid[faces].astype(np.float32), 2048)
    assert (face_id >= 0).all()
    assert time.perf_counter() - started < 20


def test_fill_gutter_fills_every_texel_and_copies_island_colours_into_the_gutter():
    texture = np.full((64, 64, 3), np.nan, dtype=np.float32)
    covered = np.zeros((64, 64), dtype=bool)
    covered[10:20, 10:20], covered[40:50, 30:60] = True, True
    texture[10:20, 10:20] = [1, 0, 0]
    texture[40:50, 30:60] = [0, 0, 1]
    filled = fill_gutter(texture, covered, width=3)
    assert np.isfinite(filled).all()
    assert np.array_equal(filled[covered], texture[covered])
    assert np.allclose(filled[7:23, 7:23], [1, 0, 0])           # 3-texel ring around the red island
    assert np.allclose(filled[37:53, 27:63], [0, 0, 1])
    # Coarse mip levels stay inside the islands' colour range (no black, no NaN).
    assert filled.min() >= 0 and filled.max() <= 1 and filled[:, :, 1].max() == 0


def test_split_to_manifold_repairs_what_uvatlas_would_crash_on():
    # Three faces on edge (0,1) (open3d segfaults on this) and a bow-tie vertex 1.
    faces = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4], [1, 5, 6]])
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, -1, 0], [0.5, 0, 1], [2, 0, 0], [2, 1, 0.0]])
    legacy = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces))
    assert not legacy.is_edge_manifold()
    new_faces, source = split_to_manifold(faces)
    assert np.array_equal(vertices[source][new_faces], vertices[faces])   # geometry untouched
    repaired = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices[source]),
                                         o3d.utility.Vector3iVector(new_faces))
    assert repaired.is_edge_manifold() and repaired.is_vertex_manifold()


def test_non_manifold_mesh_unwraps_without_crashing(private_cache):
    sphere = sphere_scene(1)
    # A fin: a triangle hanging off an edge the sphere already uses twice.
    edge = sphere.faces[0, :2]
    fin = len(sphere.vertices)
    vertices = np.vstack([sphere.vertices, sphere.vertices[edge].mean(axis=0) * 1.5])
    faces = np.vstack([sphere.faces, [[edge[0], edge[1], fin]]])
    scene = Scene("fin", vertices, faces)
    atlas = make_atlas(scene, 256, SceneConfig())
    assert atlas.method == "xatlas" and atlas.uv.shape == (len(faces), 3, 2)
    assert atlas.uv.min() >= 0 and atlas.uv.max() <= 1
    assert overlap_share(atlas.uv, 256) < 0.01


def test_unwrapped_atlas_figures_are_sane_and_second_call_hits_the_cache(private_cache):
    scene = sphere_scene(3)
    atlas = make_atlas(scene, 512, SceneConfig())
    assert atlas.method == "xatlas" and not atlas.cached and atlas.charts >= 2
    assert 0.3 < atlas.utilisation < 0.95     # a ball's round charts pack loosely (38% measured)
    area = trimesh.Trimesh(scene.vertices, scene.faces).area
    uv_area = trimesh.Trimesh(np.c_[atlas.uv.reshape(-1, 2), np.zeros(len(scene.faces) * 3)],
                              np.arange(len(scene.faces) * 3).reshape(-1, 3)).area
    assert atlas.texels_per_metre == pytest.approx(np.sqrt(uv_area * 512 ** 2 / area), rel=1e-4)
    # Roughly the used share of texels spread over the surface: uvatlas stretches little.
    assert atlas.texels_per_metre == pytest.approx(np.sqrt(atlas.utilisation * 512 ** 2 / area), rel=0.15)
    assert len(list(private_cache.glob("*.npz"))) == 1

    again = make_atlas(scene, 512, SceneConfig())
    assert again.cached and np.array_equal(again.uv, atlas.uv) and again.seconds < atlas.seconds
    assert make_atlas(scene, 256, SceneConfig()).cached is False   # the gutter belongs to one size
    assert set(atlas_info(atlas)) >= {"charts", "texels_per_metre", "utilisation", "method", "seconds"}


def quad_with_corner_texture(uv: np.ndarray) -> Scene:
    texture = np.zeros((8, 8, 3), dtype=np.float32)
    texture[:4, :4], texture[:4, 4:] = [1, 0, 0], [0, 1, 0]      # top: red | green
    texture[4:, :4], texture[4:, 4:] = [0, 0, 1], [1, 1, 0]      # bottom: blue | yellow
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    return Scene("quad", vertices, faces, Appearance(uv=uv.astype(np.float32), textures=[texture],
                                                      face_texture=np.zeros(2, dtype=np.int32)))


def test_usable_atlas_is_kept_and_reunwrap_replaces_it(private_cache):
    uv = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]])
    scene = quad_with_corner_texture(uv + [2, -1])                  # tiled: whole tiles off [0,1]
    kept = make_atlas(scene, 64, SceneConfig())
    assert kept.method == "kept" and np.allclose(kept.uv, uv)
    baked = bake_texture(scene, kept, 64)
    assert np.allclose(baked[0, 0], [1, 0, 0]) and np.allclose(baked[-1, -1], [1, 1, 0])

    fresh = make_atlas(scene, 64, SceneConfig(reunwrap=True))
    assert fresh.method == "projected"             # a flat quad: one exact axis chart
    # Baking resamples the source texture through the old UVs: corners keep their colours.
    baked = bake_texture(scene, fresh, 64)
    face_id, bary = rasterize_atlas(fresh.uv, 64)
    source_uv = np.einsum("pc,pcd->pd", bary[face_id >= 0], uv[face_id[face_id >= 0]])
    expected = np.select([(source_uv[:, 0] < 0.4) & (source_uv[:, 1] > 0.6),
                          (source_uv[:, 0] > 0.6) & (source_uv[:, 1] > 0.6),
                          (source_uv[:, 0] < 0.4) & (source_uv[:, 1] < 0.4),
                          (source_uv[:, 0] > 0.6) & (source_uv[:, 1] < 0.4)],
                         [1, 2, 3, 4], 0)
    colours = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    clear = expected > 0
    assert clear.sum() > 500
    assert np.allclose(baked[face_id >= 0][clear], colours[expected[clear]], atol=1e-5)


def test_overlapping_atlas_is_unwrapped_again(private_cache):
    same = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 0], [1, 1]]])   # both faces on one triangle
    atlas = make_atlas(quad_with_corner_texture(same), 64, SceneConfig())
    assert atlas.method != "kept" and overlap_share(atlas.uv, 64) < 0.01


def test_projected_charts_fallback_packs_without_overlap():
    scene = sphere_scene(3)
    faces, source = split_to_manifold(scene.faces)
    uv = project_charts(scene.vertices[source], faces, 512)
    assert uv.min() >= 0 and uv.max() <= 1
    assert overlap_share(uv, 512) < 0.01
    face_id, _ = rasterize_atlas(uv, 512)
    assert (face_id >= 0).mean() > 0.3


def test_bake_texture_fills_gutter_and_greys_without_colours(private_cache):
    scene = sphere_scene(2)
    atlas = make_atlas(scene, 128, SceneConfig())
    texture = bake_texture(scene, atlas, 128)
    assert texture.shape == (128, 128, 3) and texture.dtype == np.float32 and np.isfinite(texture).all()
    # Every texel holds a colour from the ball's ramp: none is left at the neutral grey fill.
    ramp = scene.appearance.vertex_colors
    assert (texture >= ramp.min(axis=0) - 1e-4).all() and (texture <= ramp.max(axis=0) + 1e-4).all()
    plain = Scene("plain", scene.vertices, scene.faces)
    assert np.allclose(bake_texture(plain, atlas, 128), 0.5)


def test_baked_vertex_colours_render_like_the_vertex_colours_of_demo_room():
    import torch

    from meshstyle import scenes
    from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at
    from meshstyle.raster.rasterizer import Rasterizer
    from meshstyle.stylization.texture import sample

    scene = scenes.build("demo-room")
    atlas = make_atlas(scene, 1024, SceneConfig())
    assert atlas.method == "projected" and atlas.utilisation > 0.6   # boxes: exact axis charts, no uvatlas
    texture = torch.from_numpy(np.ascontiguousarray(bake_texture(scene, atlas, 1024).transpose(2, 0, 1)))
    views = [((2, 2.5, 1.6), (0, 0, 0.8)), ((1, 1, 1.5), (3.5, 4.5, 0.5)), ((3.5, 0.5, 2.2), (0.5, 4, 0.3))]
    cameras = [Camera(K=intrinsics_from_fov(213, 160, 70.0), width=213, height=160,
                      cam_to_world=look_at(np.array(eye, float), np.array(target, float))) for eye, target in views]
    for fragments in Rasterizer(scene.vertices, scene.faces, atlas.uv).render_many(cameras):
        mask = fragments.mask.numpy()
        corner_colours = scene.appearance.vertex_colors[scene.faces[fragments.face_id.numpy()[mask]]]
        expected = np.einsum("pk,pkc->pc", fragments.bary.numpy()[mask], corner_colours)
        # Plain bilinear lookups: mip-mapping would blur far surfaces that the vertex colours alias.
        got = sample(texture, fragments.uv, mask=fragments.mask).numpy().transpose(1, 2, 0)[mask]
        psnr = 10 * np.log10(1.0 / np.mean((got - expected) ** 2))
        assert mask.mean() > 0.5 and psnr >= 35, psnr      # measured 44.7-45.9 dB


def test_uvatlas_failure_falls_back_to_projected_charts(private_cache, capsys, monkeypatch):
    # Two separate quads on a 4-texel atlas: uvatlas cannot pack them with its 3-texel gutter
    # (xatlas, the default unwrapper, packs them: uvatlas is what is left where xatlas is missing).
    monkeypatch.setenv("MESHSTYLE_UNWRAPPER", "uvatlas")
    quad = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.0]])
    scene = Scene("two quads", np.vstack([quad, quad + [2, 0, 0]]),
                  np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]]))
    atlas = make_atlas(scene, 4, SceneConfig())
    assert "uvatlas failed" in capsys.readouterr().err
    assert atlas.method == "projected" and atlas.charts == 2
    assert atlas.uv.min() >= 0 and atlas.uv.max() <= 1 and overlap_share(atlas.uv, 4) == 0


def test_spatial_parts_cut_a_mesh_into_compact_parts_of_equal_size():
    from meshstyle.atlas.unwrap import spatial_parts

    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    vertices, faces = np.asarray(ball.vertices), np.asarray(ball.faces)
    parts = spatial_parts(vertices, faces, 1000)
    assert len(parts) == 6 and max(map(len, parts)) - min(map(len, parts)) <= 1
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(faces)))
    # k-d cells do not overlap: the parts' boxes fill the ball's box once (a random split of the
    # faces would give each part nearly the whole box).
    centroids = vertices[faces].mean(axis=1)
    volume = lambda points: float(np.prod(points.max(axis=0) - points.min(axis=0)))  # noqa: E731
    assert sum(volume(centroids[part]) for part in parts) <= 1.01 * volume(centroids)
    assert [p.tolist() for p in spatial_parts(vertices, faces, len(faces))] == [list(range(len(faces)))]


def test_a_large_mesh_unwraps_in_parts_into_one_atlas_without_overlap(monkeypatch):
    from meshstyle.atlas import unwrap

    monkeypatch.setattr(unwrap, "FACES_PER_PARTITION", 1500)   # 5,120 faces: 4 parts
    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    vertices, faces = np.asarray(ball.vertices), np.asarray(ball.faces)
    uv = unwrap._xatlas_uv(vertices, faces, 512, unwrap.GUTTER_TEXELS)
    assert uv.shape == (len(faces), 3, 2) and uv.min() >= 0 and uv.max() <= 1
    assert overlap_share(uv, 512) < 0.01
    assert np.array_equal(uv, unwrap._xatlas_uv(vertices, faces, 512, unwrap.GUTTER_TEXELS))
    # Every part is packed at the same texel density: UV area per surface area alike in all parts.
    def area(points):
        edges = points[:, 1:] - points[:, :1]
        if points.shape[-1] == 2:
            return 0.5 * np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0])
        return 0.5 * np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1)
    parts = unwrap.spatial_parts(vertices, faces, 1500)
    density = [area(uv[part]).sum() / area(vertices[faces[part]]).sum() for part in parts]
    assert len(parts) == 4 and max(density) / min(density) < 1.3, density
    # Each face got its own UVs back: inside a chart, two faces sharing an edge give its two ends the
    # same UVs, and chart boundaries (part cuts included) are a small share of the edges.
    corner_uv = {}
    continuous = total = 0
    for face, corners in enumerate(faces):
        for k in range(3):
            edge = (corners[k], corners[(k + 1) % 3])
            ends = (uv[face, k], uv[face, (k + 1) % 3])
            twin = corner_uv.pop((edge[1], edge[0]), None)
            if twin is None:
                corner_uv[edge] = ends
                continue
            total += 1
            continuous += np.allclose(twin[0], ends[1], atol=1e-6) and np.allclose(twin[1], ends[0], atol=1e-6)
    assert total == len(faces) * 3 // 2 and continuous / total > 0.85, continuous / total
