"""The atlas side chosen from the views (texture.size 0): texels per painted pixel on rasterized
planes, and what `prepare` does with it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from meshstyle.views.texel_density import view_texture_size
from meshstyle.atlas.unwrap import Atlas
from meshstyle.pipeline import prepare, quick_config
from meshstyle.raster.rasterizer import Rasterizer
from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at

HEIGHT, WIDTH = 96, 128
SIDE_M = 2.0   # the wall's side; its UVs span [0,1], so one metre is 1/SIDE_M of the texture


def wall_pyramid(distance: float, heights: list[int]):
    """A frontal SIDE_M x SIDE_M wall `distance` metres in front of the camera, filling the image.
    A narrow field of view: the shorter axis is taken as the longer one times |cos| to the view
    ray, which on a frontal wall undercuts it by that cosine off the image centre."""
    wall = trimesh.creation.box(extents=(SIDE_M, 0.01, SIDE_M))
    uv = (wall.vertices[wall.faces][..., [0, 2]] / SIDE_M + 0.5).astype(np.float32)
    rasterizer = Rasterizer(np.asarray(wall.vertices), np.asarray(wall.faces, dtype=np.int64), uv)
    eye = np.array([0.0, -distance - 0.005, 0.0])
    camera = Camera(K=intrinsics_from_fov(WIDTH, HEIGHT, 20.0), cam_to_world=look_at(eye, eye + [0.0, 1.0, 0.0]),
                    width=WIDTH, height=HEIGHT)
    return rasterizer.pyramid(camera, heights), camera


def test_side_gives_the_painted_pixels_the_wanted_texels():
    """At the level a frontal wall is painted at, one pixel spans distance/focal metres, i.e.
    distance/(focal*SIDE_M) of the texture: the side wanted is texels_per_pixel times the inverse."""
    heights = [64, 96, 144]
    distance = 2.0
    pyramid, camera = wall_pyramid(distance, heights)
    # Painted at the middle level: the depth reference is where the coarsest level has that stroke size.
    reference = distance * heights[0] / heights[1]
    side, wanted = view_texture_size([pyramid], 1, reference, 1.5, 64, 16384)
    focal = float(camera.scaled(heights[1]).K[1, 1])
    assert wanted == pytest.approx(1.5 * focal * SIDE_M / distance, rel=0.03)
    assert side == 2 ** round(math.log2(wanted))   # the nearest power of two
    # Just over a power of two keeps it; past √2 of it takes the next one.
    for over, expected in [(1.05, 512), (1.40, 512), (1.45, 1024)]:
        assert view_texture_size([pyramid], 1, reference, 1.5 * over * 512 / wanted, 64, 16384)[0] == expected
    assert view_texture_size([pyramid], 1, reference, 3.0, 64, 16384)[1] == pytest.approx(2 * wanted, rel=1e-6)


def test_depth_levels_keep_the_wanted_side_across_depths():
    """A wall 1.5x farther is painted one level finer, so its pixels span as much of it as before
    and the wanted side stays; measured at one fixed level (no depth levels) it would drop 1.5x."""
    heights = [64, 96, 144]
    reference = 2.0 * heights[0] / heights[1]
    near, _ = wall_pyramid(2.0, heights)
    far, _ = wall_pyramid(3.0, heights)
    wanted_near = view_texture_size([near], 1, reference, 1.0, 64, 16384)[1]
    wanted_far = view_texture_size([far], 1, reference, 1.0, 64, 16384)[1]
    assert wanted_far == pytest.approx(wanted_near, rel=0.03)
    fixed_near = view_texture_size([wall_pyramid(2.0, [96])[0]], 0, reference, 1.0, 64, 16384)[1]
    fixed_far = view_texture_size([wall_pyramid(3.0, [96])[0]], 0, reference, 1.0, 64, 16384)[1]
    assert fixed_near / fixed_far == pytest.approx(1.5, rel=0.03)


def test_side_is_a_power_of_two_within_bounds():
    heights = [64, 96, 144]
    pyramid, _ = wall_pyramid(2.0, heights)
    reference = 2.0 * heights[0] / heights[1]
    wanted = view_texture_size([pyramid], 1, reference, 1.0, 64, 16384)[1]
    assert view_texture_size([pyramid], 1, reference, 1.0, 4 * 2 ** math.ceil(math.log2(wanted)), 16384)[0] \
        == 4 * 2 ** math.ceil(math.log2(wanted))                      # never below the smallest
    assert view_texture_size([pyramid], 1, reference, 1.0, 16, 100)[0] == 64   # the largest, a power of two
    assert view_texture_size([], 1, reference, 1.0, 256, 4096) == (256, 256.0)   # no view sees the mesh


def test_atlas_widens_but_never_shrinks():
    atlas = Atlas(uv=np.zeros((1, 3, 2), np.float32), size=1024, charts=1, utilisation=0.5,
                  texels_per_metre=100.0, method="projected", seconds=0.0)
    assert atlas.at_size(4096).texels_per_metre == pytest.approx(400.0)
    with pytest.raises(ValueError, match="gutters would shrink"):
        atlas.at_size(512)


def test_prepare_takes_the_side_from_the_views():
    """With texture.size 0 the run's texture, atlas record and texels all have the side the views
    ask for: the packing side when it is enough, more texels per pixel a larger one, at most max_size."""
    import scenes

    config = quick_config()
    config.cameras.views, config.cameras.holdout = 2, 0
    config.texture.size = 0
    config.texture.texels_per_pixel = 0.01
    small = prepare(scenes.demo_object(), "circles", config)
    assert small.info["texture_size"] == small.atlas.size == 1024 == small.initial.shape[0]
    assert small.info["atlas"]["size"] == 1024
    config.texture.texels_per_pixel = 1000.0
    config.texture.max_size = 2048
    large = prepare(scenes.demo_object(), "circles", config)
    assert large.info["texture_size"] == large.atlas.size == 2048 == large.initial.shape[0] == large.start.shape[1]
    assert large.info["atlas"]["texels_per_metre"] == pytest.approx(2 * small.info["atlas"]["texels_per_metre"],
                                                                   rel=1e-3)
    assert np.array_equal(large.atlas.uv, small.atlas.uv)        # the same UVs, more texels
    assert large.texels.size == 2048 and len(large.seen) == len(large.texels.point)
    # Four times the texels on the same charts (to within the charts' rasterized edges).
    assert len(large.texels.point) == pytest.approx(4 * len(small.texels.point), rel=0.05)
