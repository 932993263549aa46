"""Several styles blended: the run optimises towards the mixed statistics."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from meshstyle.config import StylizeConfig
from meshstyle.stylize.losses import StyleTargets, blend_targets


def test_blend_mixes_each_statistic():
    a = StyleTargets("gram", (1.0,), gram={"relu1_1": torch.eye(2)})
    b = StyleTargets("gram", (1.0,), gram={"relu1_1": 3 * torch.eye(2)})
    mixed = blend_targets([a, b], [0.75, 0.25])
    assert torch.allclose(mixed.gram["relu1_1"], 1.5 * torch.eye(2))
    # AdaIN: the pooled features of two styles: means average, stds come from second moments.
    a = StyleTargets("adain", (1.0,), mean={"l": torch.tensor([0.0])}, std={"l": torch.tensor([1.0])})
    b = StyleTargets("adain", (1.0,), mean={"l": torch.tensor([2.0])}, std={"l": torch.tensor([1.0])})
    mixed = blend_targets([a, b], [1.0, 1.0])
    assert mixed.mean["l"].item() == pytest.approx(1.0)
    assert mixed.std["l"].item() == pytest.approx(np.sqrt(2.0))



@pytest.fixture(scope="module")
def blend_runs():
    """circles alone, strokes alone, and a 50/50 blend; each scored against both styles' targets."""
    import scenes
    from meshstyle.pipeline import prepare, stylize
    from meshstyle.stylize.optimize import Objective, evaluate_views

    config = StylizeConfig()
    config.cameras.views, config.cameras.holdout = 2, 1
    config.texture.size, config.raster.image_height, config.raster.levels = 256, 80, 2
    config.loss.style_scales, config.loss.style_size = (1.0,), 128
    config.optim.iters, config.optim.lr = 12, 0.05
    scene = scenes.demo_object()
    judges = {name: prepare(scene, name, config) for name in ("circles", "strokes")}
    scores = {}
    for label, style in {"circles": "circles", "strokes": "strokes", "blend": ["circles", "strokes"]}.items():
        texture = torch.from_numpy(stylize(scene, style, config).mesh.texture).permute(2, 0, 1)
        scores[label] = {name: evaluate_views(texture, judge.holdout_views, judge.objective).style
                         for name, judge in judges.items()}
    return scores


def test_blend_lies_between_the_single_style_runs(blend_runs):
    for style, other in (("circles", "strokes"), ("strokes", "circles")):
        own, blend, foreign = blend_runs[style][style], blend_runs["blend"][style], blend_runs[other][style]
        assert own < blend < foreign, (style, own, blend, foreign)


def test_style_weights_must_match_the_styles(tmp_path):
    env = dict(os.environ, MESHSTYLE_QUIET="1")
    done = subprocess.run([sys.executable, "-m", "meshstyle", "stylize", "demo-object", "--style", "circles",
                           "strokes", "--style-weights", "0.7", "0.2", "0.1", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "3 weights for 2 styles" in done.stderr
    assert not (tmp_path / "o" / "run.json").exists()
