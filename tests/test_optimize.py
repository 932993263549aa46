"""The optimiser loop on a real (small) problem: checkpoints, interrupt + resume, schedule."""
from __future__ import annotations

import pytest
import torch

from meshstyle import scenes
from meshstyle.config import StylizeConfig
from meshstyle.errors import InputError
from meshstyle.stylization.optimize import (GPU_VIEWS_PER_STEP, learning_rate, load_checkpoint, optimize,
                                            resolve_views_per_step, views_for_step)
from meshstyle.pipeline import prepare
from meshstyle.stylization.texture import LaplacianTexture

STEPS, INTERRUPT_AT = 6, 3


def small_config() -> StylizeConfig:
    config = StylizeConfig(seed=3)
    config.cameras.views = 3
    config.cameras.holdout = 0
    config.raster.image_height = 64
    config.raster.levels = 2
    config.texture.size = 256
    config.texture.pyramid_levels = 3
    config.loss.style_scales = (1.0,)
    config.loss.style_size = 128
    config.optim.iters = STEPS
    config.optim.views_per_step = 2
    config.optim.checkpoint_every_s = 1e9   # only the interrupt writes one
    return config


@pytest.fixture(scope="module")
def problem():
    config = small_config()
    return config, prepare(scenes.demo_object(0), "circles", config)


def fresh_texture(config, prepared) -> LaplacianTexture:
    return LaplacianTexture(prepared.initial_tensor, config.texture.pyramid_levels)


def test_resume_after_interrupt_reproduces_uninterrupted_run(problem, tmp_path):
    config, prepared = problem
    uninterrupted = optimize(fresh_texture(config, prepared), prepared.views, prepared.objective,
                             config.optim, config.seed)

    def interrupt(step, record):
        if step == INTERRUPT_AT:
            raise KeyboardInterrupt

    path = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        optimize(fresh_texture(config, prepared), prepared.views, prepared.objective, config.optim,
                 config.seed, checkpoint_path=path, on_step=interrupt)
    checkpoint = load_checkpoint(path)
    assert checkpoint["step"] == INTERRUPT_AT and len(checkpoint["history"]) == INTERRUPT_AT

    resumed = optimize(fresh_texture(config, prepared), prepared.views, prepared.objective, config.optim,
                       config.seed, checkpoint_path=path, resume=checkpoint)
    assert resumed.steps_run == STEPS - INTERRUPT_AT
    assert [r["step"] for r in resumed.history] == list(range(1, STEPS + 1))
    assert torch.equal(resumed.texture, uninterrupted.texture)
    assert [r["total"] for r in resumed.history] == [r["total"] for r in uninterrupted.history]
    # The texture moved: an identical result from a loop that did nothing would prove nothing.
    assert float((uninterrupted.texture - prepared.initial_tensor).abs().mean()) > 1e-3
    assert load_checkpoint(path)["step"] == STEPS


def test_resume_refuses_a_checkpoint_of_another_seed(problem, tmp_path):
    config, prepared = problem
    outcome = optimize(fresh_texture(config, prepared), prepared.views, prepared.objective,
                       config.optim.__class__(iters=1), config.seed)
    with pytest.raises(InputError, match="seed"):
        optimize(fresh_texture(config, prepared), prepared.views, prepared.objective, config.optim,
                 config.seed + 1, resume=outcome.checkpoint)
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="checkpoint"):
        load_checkpoint(broken)


def test_texture_stays_in_range_and_history_records_each_step(problem):
    config, prepared = problem
    texture = fresh_texture(config, prepared)
    outcome = optimize(texture, prepared.views, prepared.objective, config.optim, config.seed)
    with torch.no_grad():
        summed = texture()
    # Clamping corrects the finest Laplacian layer, so the sum lands in range up to float rounding.
    assert float(summed.min()) >= -1e-6 and float(summed.max()) <= 1.0 + 1e-6
    assert len(outcome.history) == STEPS
    for record in outcome.history:
        assert set(record) >= {"step", "total", "style", "content", "tv", "lr", "seconds"}
        assert record["style"] > 0 and record["content"] >= 0 and record["seconds"] > 0


def test_schedule_visits_every_view_each_epoch_and_lr_decays():
    n_views, per_step, seed = 7, 2, 11
    slots = [v for step in range(7) for v in views_for_step(step, n_views, per_step, seed)]
    assert sorted(slots[:7]) == list(range(7)) and sorted(slots[7:14]) == list(range(7))
    assert slots != sorted(slots)   # shuffled
    assert views_for_step(3, n_views, per_step, seed) == views_for_step(3, n_views, per_step, seed)
    assert views_for_step(3, n_views, per_step, seed) != views_for_step(3, n_views, per_step, seed + 1) or \
        views_for_step(4, n_views, per_step, seed) != views_for_step(4, n_views, per_step, seed + 1)
    optim = StylizeConfig().optim
    rates = [learning_rate(step, optim) for step in range(optim.iters)]
    assert rates[0] == pytest.approx(optim.lr)
    assert rates[-1] == pytest.approx(optim.lr * optim.lr_decay)
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_auto_views_per_step_is_one_on_cpu_and_more_on_a_gpu():
    optim = StylizeConfig().optim
    assert optim.views_per_step == 0   # the default is auto
    assert resolve_views_per_step(optim, "cpu").views_per_step == 1
    # torch.device("cuda") needs no GPU to exist, so the GPU branch is checked here too.
    assert resolve_views_per_step(optim, "cuda:0").views_per_step == GPU_VIEWS_PER_STEP > 1
    assert optim.views_per_step == 0   # resolving copies, the user's config is untouched
    optim.views_per_step = 3
    assert resolve_views_per_step(optim, "cuda").views_per_step == 3   # an explicit value wins
