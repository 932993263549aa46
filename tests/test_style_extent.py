"""`--style-extent`: strokes get a size in the world.

The built-in `circles` style has discs of radius width/20, so painted with extent E they should
measure E/20 on the surface, at every depth: an empty box room (walls seen from 1 to 5 m away) is
stylized at two extents and the discs are measured with eval's `circles` metric (back-projected
with rendered depth and normals, on held-out views).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from meshstyle.config import StylizeConfig
from meshstyle.geometry.scene import Appearance, Scene
from meshstyle.outputs.run_folder import evaluate_run
from meshstyle.pipeline import prepare, quick_config, stylize
from scenes.room import lattice_box_surface

EXTENTS = (1.0, 2.0)


def box_room() -> Scene:
    """A plain 5 x 4 x 2.5 m room, light grey: walls, floor and ceiling at many depths."""
    lattice, faces = lattice_box_surface((10, 8, 5), inward=True)
    vertices = lattice.astype(np.float64) * 0.5
    colours = np.full((len(vertices), 3), 0.9, dtype=np.float32)
    return Scene(name="box-room", vertices=vertices, faces=faces.astype(np.int64),
                 appearance=Appearance(vertex_colors=colours), kind="room")


def extent_config(extent: float) -> StylizeConfig:
    config = StylizeConfig()
    config.cameras.views, config.cameras.holdout = 6, 3
    config.raster.image_height, config.raster.levels = 128, 3
    config.texture.size = 512
    # Texture synthesis at one style scale: the discs' size is then the extent's alone.
    config.loss.style_only, config.loss.style_scales = True, (1.0,)
    config.loss.style_extent = extent
    config.optim.iters, config.optim.lr = 60, 0.05
    return config


@pytest.fixture(scope="module")
def extent_runs(tmp_path_factory):
    runs = {}
    for extent in EXTENTS:
        out = tmp_path_factory.mktemp(f"extent{extent}")
        stylize(box_room(), "circles", extent_config(extent)).save(out)
        runs[extent] = out
    return runs


@pytest.mark.parametrize("extent", EXTENTS)
def test_disc_radius_is_a_twentieth_of_the_extent(extent_runs, extent):
    out = extent_runs[extent]
    circles = evaluate_run(out, ["circles"])["circles"]
    wanted = extent / 20.0
    assert circles["count"] >= 10, circles
    assert abs(circles["radius_median_m"] - wanted) <= 0.15 * wanted, (circles, wanted)
    info = json.loads((out / "run.json").read_text())["info"]
    assert info["style_extent_m"] == pytest.approx(extent, rel=0.02)


def test_default_run_reports_the_extent_it_amounts_to():
    config = quick_config()
    config.cameras.views, config.cameras.holdout = 2, 0
    import scenes

    prepared = prepare(scenes.demo_object(), "circles", config)
    info = prepared.info
    width = prepared.style_image.shape[1]
    assert width == config.loss.style_size          # no extent: the style image keeps its size
    camera = prepared.train_cameras[0]
    focal = camera.K[1, 1] * config.raster.image_height / camera.height
    assert info["style_extent_m"] == pytest.approx(width * info["reference_depth_m"] / focal, rel=1e-6)
    config.loss.style_extent = 2 * info["style_extent_m"]
    doubled = prepare(scenes.demo_object(), "circles", config)
    assert doubled.style_image.shape[1] == pytest.approx(2 * width, abs=1)
    assert doubled.info["style_extent_m"] == pytest.approx(config.loss.style_extent, rel=0.01)
