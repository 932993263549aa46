"""A two-style blend lies between its single-style runs (issue 14): demo-object stylized with
bold yellow/purple stripes alone (A), the built-in `strokes` alone (B) and both 50/50, each
scored with eval's style distance (sliced Wasserstein of VGG features,
held-out views) to A and to B. The blend's distance to A must
lie between the A run's and the B run's, and likewise for B, by a healthy share of the gap
(README, the `--style a.jpg b.jpg --style-weights` bullet, has the measured margins)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from meshstyle.config import StylizeConfig

STYLE_SIZE = 128


def stripes(size: int = STYLE_SIZE) -> np.ndarray:
    """Diagonal yellow and purple stripes: unlike `strokes` in palette and in structure. (Not
    `circles`: its mostly white image is a weak reference for eval's distance; the circles run
    scored no nearer to it than the strokes run at these settings.)"""
    rows, cols = np.mgrid[0:size, 0:size]
    band = ((rows + cols) // (size // 8)) % 2 == 0
    return np.where(band[..., None], [1.0, 0.85, 0.1], [0.25, 0.05, 0.35]).astype(np.float32)


MIN_SHARE = 0.15                  # each side of the blend keeps at least this share of the gap
SEED = int(os.environ.get("MESHSTYLE_BLEND_SEED", "0"))


def blend_config(seed: int) -> StylizeConfig:
    config = StylizeConfig()
    config.cameras.views, config.cameras.holdout = 4, 2
    config.raster.image_height, config.raster.levels = 96, 1
    config.texture.size = 256
    config.loss.style_only = True           # the styles alone decide: nothing of the mesh to keep
    config.loss.style_scales = (1.0,)
    config.loss.style_size = STYLE_SIZE
    config.optim.iters, config.optim.lr = 40, 0.05
    config.seed = seed
    return config


@pytest.fixture(scope="module")
def distances():
    """{run: (distance to A, distance to B)} for the runs A, B and the blend."""
    from meshstyle.evaluate.metrics import evaluate
    from meshstyle.inputs.styles import load_style
    from meshstyle.pipeline import stylize
    from meshstyle.scenes import demo_object

    scene = demo_object()
    styles = [stripes(), load_style("strokes", STYLE_SIZE)]
    runs = {"A": styles[0], "B": styles[1], "blend": styles}
    scores = {}
    for label, style in runs.items():
        result = stylize(scene, style, blend_config(SEED))
        scores[label] = tuple(
            evaluate(result.mesh, cameras=result.cameras, holdout=result.holdout, style_image=reference,
                     metrics=["style"], style_size=STYLE_SIZE)["style"]["swd"] for reference in styles)
    print({label: tuple(round(d, 4) for d in pair) for label, pair in scores.items()})
    return scores


def test_blend_lies_between_the_single_style_runs(distances):
    for index, (near, far) in enumerate((("A", "B"), ("B", "A"))):
        own, blend, other = distances[near][index], distances["blend"][index], distances[far][index]
        gap = other - own
        assert gap > 0, (near, distances)
        # The blend is neither (almost) the style's own run nor the other style's.
        assert (blend - own) / gap > MIN_SHARE, (near, own, blend, other)
        assert (other - blend) / gap > MIN_SHARE, (near, own, blend, other)
