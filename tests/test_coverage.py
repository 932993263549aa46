"""Every used texel painted: texel coverage of views, and paint carried to texels no view sees."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import scenes
from meshstyle.geometry.camera import Camera, look_at
from meshstyle.views.cameras import intrinsics_from_fov
from meshstyle.atlas.seams import seam_fill_for
from meshstyle.views.coverage import propagate_paint, seen_mask, select_for_coverage, texel_points
from meshstyle.pipeline import quick_config, stylize
from meshstyle.raster.rasterizer import Rasterizer
from meshstyle.stylization.texture import LaplacianTexture


def rows_in(rows: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Which of `rows` (N,C) occur exactly among `pool` (M,C)."""
    view = lambda a: np.ascontiguousarray(a, dtype=np.float32).view(np.dtype((np.void, 4 * a.shape[1]))).ravel()  # noqa: E731
    return np.isin(view(rows), view(pool))


def test_texels_no_view_sees_take_paint_from_seen_ones():
    room = scenes.demo_room(0)
    size = 128
    from meshstyle.atlas.unwrap import make_atlas

    atlas = make_atlas(room, size)
    rasterizer = Rasterizer(room.vertices, room.faces, atlas.uv)
    centre = room.bounds.mean(axis=0)
    eye = centre.copy()
    eye[2] = room.bounds[0, 2] + 1.6
    target = eye + np.array([1.0, 0.0, -0.3])
    camera = Camera(K=intrinsics_from_fov(80, 60, 60.0), cam_to_world=look_at(eye, target), width=80, height=60)
    texels = texel_points(room.vertices, room.faces, atlas.uv, size)
    seen = seen_mask(texels, [camera], rasterizer.render_many([camera]))
    assert 0.02 < seen.mean() < 0.5          # one view sees part of the room, most of it is unseen

    rng = np.random.default_rng(1)
    original = np.full((size, size, 3), 0.5, dtype=np.float32)
    texture = original.copy()
    flat = texture.reshape(-1, 3)
    flat[texels.index[seen]] = rng.uniform(size=(int(seen.sum()), 3))      # the optimiser's paint
    painted = propagate_paint(texture, texels, seen).reshape(-1, 3)
    unseen_colours = painted[texels.index[~seen]]
    # Every unseen texel now carries paint from the seen surface, none keeps the original grey.
    assert rows_in(unseen_colours, flat[texels.index[seen]]).all()
    assert not (unseen_colours == 0.5).all(axis=1).any()
    np.testing.assert_array_equal(painted[texels.index[seen]], flat[texels.index[seen]])
    # Mirroring keeps strokes varied: far more distinct colours than a nearest-border copy needs.
    assert len(np.unique(unseen_colours, axis=0)) > 0.2 * min(len(unseen_colours), int(seen.sum()))


def test_views_are_chosen_for_texel_coverage():
    room = scenes.demo_room(0)
    from meshstyle.atlas.unwrap import make_atlas
    from meshstyle.views.cameras import walkthrough

    atlas = make_atlas(room, 256)
    rasterizer = Rasterizer(room.vertices, room.faces, atlas.uv)
    candidates = walkthrough(room, 12, np.random.default_rng(0), width=64, height=48, rasterizer=rasterizer)
    order, share = select_for_coverage(candidates, 4, rasterizer, atlas.uv)
    assert len(set(order)) == 4
    texels = texel_points(room.vertices, room.faces, atlas.uv, 256)

    def coverage(indices):
        chosen = [candidates[i] for i in indices]
        return seen_mask(texels, chosen, rasterizer.render_many(chosen)).mean()

    first_four = coverage(range(4))
    assert coverage(order) >= first_four
    assert share == pytest.approx(coverage(order), abs=0.05)


def test_a_surface_that_no_view_sees_ends_painted():
    room = scenes.demo_room(0)
    config = quick_config()
    config.cameras.views, config.cameras.holdout = 3, 1
    config.raster.image_height, config.optim.iters = 48, 3
    config.texture.size = 256
    result = stylize(room, "strokes", config)
    figures = result.info["painted"]
    assert figures["seen_share"] < 0.9                     # three small views leave surfaces unseen
    assert figures["painted_share"] == 1.0

    # Recompute which texels the training views see, independently of the run.
    mesh = result.mesh
    texels = texel_points(mesh.vertices, mesh.faces, mesh.uv, 256)
    rasterizer = Rasterizer(mesh.vertices, mesh.faces, mesh.uv)
    seen = seen_mask(texels, result.cameras, rasterizer.render_many(result.cameras))
    assert (~seen).mean() > 0.1
    # The texture as the optimiser left it, from the checkpoint's Laplacian layers.
    layers = LaplacianTexture(torch.from_numpy(result.original.texture).permute(2, 0, 1).contiguous(),
                              config.texture.pyramid_levels)
    layers.load_state_dict(result.checkpoint["texture"])
    with torch.no_grad():
        optimised = layers().clamp(0, 1).permute(1, 2, 0).numpy().reshape(-1, 3)[texels.index]
    final = mesh.texture.reshape(-1, 3)[texels.index]
    original = result.original.texture.reshape(-1, 3)[texels.index]
    band = np.isin(texels.index, seam_fill_for(mesh.vertices, mesh.faces, mesh.uv, 256).band)

    def changed(colours):
        return np.abs(colours - original[~seen]).mean(axis=1) > 0.02

    # The run painted the unseen texels with the seen texels' paint (outside the band cross-faded
    # along seams, copied exactly); the optimiser alone only tints some of them.
    assert changed(final[~seen]).mean() > 0.9
    assert rows_in(optimised[~seen & ~band], optimised[seen]).mean() < 0.05
    assert rows_in(final[~seen & ~band], optimised[seen]).mean() > 0.99
