"""Stroke size in world units: a long wall photographed head-on from three distances one pyramid
level apart (tests/wall_scene.py), stylized with the built-in `circles` style at `--style-extent`
2 m and 1.5 m, and measured with eval's circle measure (discs measured on the surface, in metres).

Issue 14's criterion, tested at both extents: the median disc radius is within 15% of extent/20
(the style's discs are 1/20 of its width), and the near, middle and far views agree (strokes keep
one world size at every depth). Measured with this config (README, "Stroke size"): 0.92x / 0.91x
at 2 m (seeds 0 / 1), 0.96x / 0.98x at 1.5 m. The config runs the coarse Laplacian layers at twice
the learning rate per level (`optim.coarse_lr_scale` 2), so that discs of the style's size form
within 200 steps; the default 0.5, chosen on rooms, leaves them at 0.80x (2 m) and 0.75x (1.5 m)
after 200 steps, as a plain 2-D Gram synthesis at the same step count does."""
from __future__ import annotations

import numpy as np
import pytest

from meshstyle.config import StylizeConfig
from wall_scene import wall_scene

EXTENTS = (2.0, 1.5)         # metres: at 2 m the style image is 166 px wide at the middle distance (1.5 m)


def stroke_config(extent: float, seed: int = 0) -> StylizeConfig:
    config = StylizeConfig()
    config.cameras.holdout = 0
    config.raster.image_height, config.raster.levels = 96, 3   # 96, 144, 216 px: one level per distance
    config.texture.size = 1024                                 # ~7 mm texels: discs of 10 cm are ~14 texels
    config.loss.style_extent = extent
    config.loss.style_scales = (1.0,)   # the extent is the painting's width at scale 1 (README)
    config.loss.style_only = True       # discs on white, nothing of the grey wall to keep
    config.optim.iters, config.optim.lr = 200, 0.05
    # Discs span 20-30 texels: the coarse layers must move fast enough to draw them whole in 200 steps.
    config.optim.coarse_lr_scale = 2.0
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


@pytest.fixture(scope="module", params=EXTENTS, ids=lambda extent: f"{extent:g}m")
def measured(request, tmp_path_factory):
    extent = request.param
    return extent, *disc_radii(extent, tmp_path_factory.mktemp("wall"))


def test_discs_keep_one_world_size_at_every_distance(measured):
    extent, radii, info = measured
    assert info["style_extent_m"] == pytest.approx(extent, rel=0.01)
    assert sorted(radii) == [1.0, 1.5, 2.25]
    medians = {distance: float(np.median(values)) for distance, values in radii.items() if len(values) >= 20}
    assert len(medians) == 3, {distance: len(values) for distance, values in radii.items()}
    mean = float(np.mean(list(medians.values())))
    # Without depth awareness the far discs would be 2.25x the near ones; with the reference
    # depth at the median (before the fix) the near ones came out about 0.67x.
    for distance, median in medians.items():
        assert abs(median / mean - 1) < 0.15, (distance, medians)


def test_median_disc_radius_is_within_15_percent_of_a_twentieth_of_the_extent(measured):
    extent, radii, _ = measured
    every_disc = [radius for values in radii.values() for radius in values]
    assert len(every_disc) >= 100, len(every_disc)
    assert abs(float(np.median(every_disc)) / (extent / 20) - 1) < 0.15, \
        {distance: round(float(np.median(values)) / (extent / 20), 3) for distance, values in radii.items()}
