"""`--style-extent`: the style image is sized so that its width covers the extent at the
reference depth (style pixels map 1:1 to the coarsest level's pixels there), and run.json reports
the extent a run amounts to."""
from __future__ import annotations

import pytest

from meshstyle.pipeline import prepare, quick_config


def test_default_run_reports_the_extent_it_amounts_to():
    config = quick_config()
    config.cameras.views, config.cameras.holdout = 2, 0
    import scenes

    prepared = prepare(scenes.demo_object(), "circles", config)
    info = prepared.info
    width = prepared.style_image.shape[1]
    assert width == config.loss.style_size          # no extent: the style image keeps its size
    camera = prepared.train[0].camera
    focal = camera.K[1, 1] * config.raster.image_height / camera.height
    assert info["style_extent_m"] == pytest.approx(width * info["reference_depth_m"] / focal, rel=1e-6)
    config.loss.style_extent = 2 * info["style_extent_m"]
    doubled = prepare(scenes.demo_object(), "circles", config)
    # With an extent the median depth moves to the pyramid's middle (patches.reference_depth), so
    # the style image grows by that factor too: its pixels still map 1:1 to the coarsest level's there.
    centre = (config.raster.level_scale ** (config.raster.levels - 1)) ** 0.5
    assert doubled.info["reference_depth_m"] == pytest.approx(info["reference_depth_m"] / centre, rel=0.02)
    assert doubled.style_image.shape[1] == pytest.approx(2 * width * centre, abs=2)
    assert doubled.info["style_extent_m"] == pytest.approx(config.loss.style_extent, rel=0.01)
