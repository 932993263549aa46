"""Stroke size in world units: a long wall photographed head-on from three distances one pyramid
level apart (tests/wall_scene.py), stylized with the built-in `circles` style at `--style-extent
2m`, and measured with eval's circle measure (discs measured on the surface, in metres).

What holds and is tested: the near, middle and far views' median disc radii agree (the strokes
keep one world size at every depth), and they are of the extent's order. What issue 14 asks for
and does NOT hold yet: a median radius within 15% of extent/20 (the style's discs are 1/20 of its
width). Measured with this config: 0.80x overall (near 0.81, middle 0.91, far 0.76; 125 discs).
The cause is the synthesis, not the 3-D mapping: a plain 2-D Gram synthesis at the same pixel
scale gives the same 0.80x after 200 steps and needs 300-400 steps to reach 0.86x (README, "Stroke size")."""
from __future__ import annotations

import numpy as np
import pytest

from meshstyle.config import StylizeConfig
from wall_scene import wall_scene

EXTENT = 2.0                 # metres: the style image is 166 px wide at the middle distance (1.5 m)


def stroke_config(extent: float, seed: int = 0) -> StylizeConfig:
    config = StylizeConfig()
    config.cameras.holdout = 0
    config.raster.image_height, config.raster.levels = 96, 3   # 96, 144, 216 px: one level per distance
    config.texture.size = 1024                                 # ~7 mm texels: discs of 10 cm are ~14 texels
    config.loss.style_extent = extent
    config.loss.style_scales = (1.0,)   # the extent is the painting's width at scale 1 (README)
    config.loss.style_only = True       # discs on white, nothing of the grey wall to keep
    config.optim.iters, config.optim.lr = 200, 0.05
    config.seed = seed
    return config


def disc_radii(extent: float, folder, seed: int = 0) -> tuple[dict[float, list[float]], dict]:
    """{camera distance: radii of the discs eval finds in that camera's views}, and the run's info."""
    from meshstyle.evaluate.circles import find_circles
    from meshstyle.evaluate.rendering import Renderer
    from meshstyle.pipeline import stylize

    scene = wall_scene(folder)
    config = stroke_config(extent, seed)
    config.cameras.views = len(scene.photos)
    result = stylize(scene, "circles", config)
    cameras = [view.camera for view in result.views]
    # eval measures circles on views enlarged to 480 px (evaluate/metrics.py, geometry_height).
    views = Renderer(result.mesh).render([camera.scaled(480) for camera in cameras], result.mesh.texture,
                                         desc="measure")
    radii: dict[float, list[float]] = {}
    for camera, view in zip(cameras, views):
        distance = round(float(-camera.cam_to_world[1, 3]), 2)
        radii.setdefault(distance, []).extend(circle.radius_m for circle in find_circles(view))
    return radii, result.info


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return disc_radii(EXTENT, tmp_path_factory.mktemp("wall"))


def test_discs_keep_one_world_size_at_every_distance(measured):
    radii, info = measured
    assert info["style_extent_m"] == pytest.approx(EXTENT, rel=0.01)
    assert sorted(radii) == [1.0, 1.5, 2.25]
    medians = {distance: float(np.median(values)) for distance, values in radii.items() if len(values) >= 20}
    assert len(medians) == 3, {distance: len(values) for distance, values in radii.items()}
    mean = float(np.mean(list(medians.values())))
    # Without depth awareness the far discs would be 2.25x the near ones; with the reference
    # depth at the median (before the fix) the near ones came out about 0.67x.
    for distance, median in medians.items():
        assert abs(median / mean - 1) < 0.15, (distance, medians)
    # Of the extent's order: half the extent or twice it would fail (the 15% criterion is open).
    assert 0.6 < mean / (EXTENT / 20) < 1.2, medians
