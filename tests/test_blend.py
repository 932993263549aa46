"""Several styles blended: the run optimises towards the mixed statistics."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from meshstyle.stylization.losses import StyleTargets, blend_targets


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



def test_style_weights_must_match_the_styles(tmp_path):
    env = dict(os.environ, MESHSTYLE_QUIET="1")
    done = subprocess.run([sys.executable, "-m", "meshstyle", "stylize", "demo-object", "--style", "circles",
                           "strokes", "--style-weights", "0.7", "0.2", "0.1", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "3 weights for 2 styles" in done.stderr
    assert not (tmp_path / "o" / "run.json").exists()


def test_blend_palette_pools_the_styles_colours():
    from meshstyle.stylization.paint import palette_transform, pooled_moments

    red = torch.zeros(3, 4, 4)
    red[0] = 1.0
    blue = torch.zeros(3, 8, 8)
    blue[2] = 1.0
    mean, covariance = pooled_moments([red, blue], [0.75, 0.25])   # weights, not pixel counts
    assert torch.allclose(mean, torch.tensor([0.75, 0.0, 0.25], dtype=mean.dtype))
    assert covariance[0, 0].item() == pytest.approx(0.75 * 0.25)
    assert covariance[0, 2].item() == pytest.approx(-0.75 * 0.25)
    # A flat grey texture moves to the blend's mean colour, not to the first style's.
    grey = torch.full((3, 4, 4), 0.5)
    painted = palette_transform(grey, [red, blue], target_weights=[0.75, 0.25])(grey)
    assert torch.allclose(painted.mean((1, 2)), torch.tensor([0.75, 0.0, 0.25]), atol=1e-4)
