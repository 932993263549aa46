"""Config keys are typed and range-checked when the config is built, before any work."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from typing import Literal, get_origin, get_type_hints

import pytest

import meshstyle as ms
from meshstyle.config import StylizeConfig, build_config
from meshstyle.errors import InputError

BAD_VALUES = {
    "optim.iters": "0",
    "optim.lr": "nan",
    "optim.lr_decay": "0",
    "optim.views_per_step": "-1",
    "optim.precision": "fp8",
    "texture.size": "8",
    "texture.pyramid_levels": "0",
    "texture.texels_per_metre": "-1",
    "texture.texels_per_pixel": "0",
    "texture.max_size": "32",
    "raster.image_height": "4",
    "raster.levels": "0",
    "raster.level_scale": "1",
    "cameras.views": "0",
    "cameras.kind": "spiral",
    "cameras.min_coverage": "1.5",
    "cameras.fov_deg": "180",
    "loss.statistic": "mean",
    "loss.content_target": "video",
    "loss.style_layers": "relu1_1,relu9_9",
    "loss.content_layer": "fc7",
    "loss.style_weight": "-1",
    "loss.style_scales": "0",
    "loss.angle_threshold_deg": "120",
    "loss.reference_depth_quantile": "2",
    "seed": "-1",
}


@pytest.mark.parametrize("key,value", sorted(BAD_VALUES.items()))
def test_a_bad_value_names_the_key_and_what_it_accepts(key, value):
    with pytest.raises(InputError, match=rf"'{key}': expected "):
        build_config(None, [f"{key}={value}"])


def test_edge_values_inside_the_ranges_are_accepted():
    config = build_config(None, ["texture.size=0", "texture.size=16", "optim.iters=1", "loss.statistic=adain",
                                 "cameras.kind=orbit", "raster.level_scale=1.01", "seed=0"])
    assert (config.texture.size, config.optim.iters, config.loss.statistic) == (16, 1, "adain")


def test_every_choice_is_a_literal_and_every_number_has_a_range():
    config = StylizeConfig()
    sections = [config] + [getattr(config, f.name) for f in dataclasses.fields(config)
                           if dataclasses.is_dataclass(getattr(config, f.name))]
    for section in sections:
        hints = get_type_hints(type(section))
        for field in dataclasses.fields(section):
            hint = hints[field.name]
            if hint in (int, float) or (get_origin(hint) is tuple and get_origin(hint) is not Literal
                                        and hint.__args__[0] in (int, float)):
                assert field.metadata.get("low") is not None or field.metadata.get("high") is not None, field.name
    assert get_origin(get_type_hints(type(config.loss))["statistic"]) is Literal


def test_a_hand_built_config_is_checked_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHSTYLE_CACHE", str(tmp_path / "cache"))
    scene, stylize = ms.scenes.demo_object(), ms.stylize   # imports outside the timed part
    config = StylizeConfig()
    config.optim.iters = 0
    started = time.perf_counter()
    with pytest.raises(InputError, match="optim.iters"):
        stylize(scene, style="circles", config=config)
    assert time.perf_counter() - started < 5.0
    # No stage ran: the atlas stage would have cached its unwrap here.
    assert not any(path.is_file() for path in (tmp_path / "cache").rglob("*"))


def test_cli_refuses_an_out_of_range_flag_with_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "meshstyle", "stylize", "demo-object", "--style", "circles",
                           "--iters", "0", "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "--iters" in done.stderr and ">= 1" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
