"""Artist controls: first-class flags generated from the config, `meshstyle config`, suggestions."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import pytest

from meshstyle.cli import build_parser
from meshstyle.config import FLAG_KEYS, OptimConfig, StylizeConfig, all_keys, build_config
from meshstyle.errors import InputError
from meshstyle.options import flag_values, key_infos, parse_length


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MESHSTYLE_QUIET="1")
    return subprocess.run([sys.executable, "-m", "meshstyle", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_flag_in_help_shows_a_default(command):
    text = run_cli(command, "--help").stdout
    # One entry per option: from its flag at the start of a line to the next such line.
    entries = re.split(r"\n(?=  -)", text.split("options:", 1)[1])
    for entry in entries:
        if not entry.split():
            continue
        flag = entry.split()[0]
        if flag in ("-h,", "-h"):
            continue
        assert re.search(r"\(default: [^)]+\)|\(required\)|default: ", " ".join(entry.split())), entry


def test_stylize_has_the_flags_users_tune_with_the_config_default():
    help_text = " ".join(run_cli("stylize", "--help").stdout.split())
    for flag, key in [("--style-strength", "loss.style_strength"), ("--content-weight", "loss.content_weight"),
                      ("--preserve-color", "loss.preserve_color"), ("--tv-weight", "loss.tv_weight"),
                      ("--loss", "loss.statistic"), ("--style-extent", "loss.style_extent")]:
        assert flag in help_text and key in help_text
    default = StylizeConfig().loss.content_weight
    assert f"(loss.content_weight; default: {default})" in help_text


def test_generated_flags_set_their_keys_above_set_and_toml(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["stylize", "demo-object", "--style", "circles", "--style-strength", "2.5",
                              "--preserve-color", "--tv-weight", "0.3", "--loss", "adain",
                              "--style-extent", "40cm", "--set", "loss.tv_weight=9"])
    config = build_config(None, args.set, flag_values(args))
    assert config.loss.style_strength == 2.5 and config.loss.preserve_color is True
    assert config.loss.tv_weight == 0.3          # the flag beats --set
    assert config.loss.statistic == "adain"
    assert config.loss.style_extent == pytest.approx(0.40)
    untouched = build_config(None, [], flag_values(parser.parse_args(["stylize", "x", "--style", "y"])))
    assert untouched == StylizeConfig()         # flags not given leave every default alone


def test_every_flag_names_a_real_key_and_every_key_has_a_meaning():
    keys = set(all_keys())
    assert set(FLAG_KEYS.values()) <= keys
    missing = [info.key for info in key_infos() if not info.meaning]
    assert not missing, f"config keys without a one-line comment in config.py: {missing}"


def test_config_command_lists_every_key_with_type_default_and_meaning():
    done = run_cli("config")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(all_keys())
    assert re.search(r"^loss\.style_strength\s+float\s+1\.0\s+\S", rows["loss.style_strength"])
    assert re.search(rf"^optim\.iters\s+int\s+{OptimConfig().iters}\s+optimisation steps", rows["optim.iters"])


def test_misspelt_key_suggests_the_nearest_one(tmp_path):
    with pytest.raises(InputError, match=r"did you mean 'loss.style_strength'"):
        build_config(None, ["loss.style_strenght=2"])
    with pytest.raises(InputError, match=r"did you mean 'optim.iters'"):
        build_config(None, ["iters=3"])   # the leaf alone finds its section
    done = run_cli("stylize", "demo-object", "--style", "circles", "--style-strenght", "2")
    assert done.returncode == 2
    assert "did you mean --style-strength?" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("text,metres", [("1.5m", 1.5), ("150cm", 1.5), ("1500mm", 1.5), ("40cm", 0.4),
                                         ("800mm", 0.8), ("2", 2.0), (" 0.25 m", 0.25), ("1.5M", 1.5)])
def test_style_extent_units(text, metres):
    assert parse_length(text) == pytest.approx(metres)


def test_style_extent_bad_unit_is_a_usage_error():
    done = run_cli("stylize", "demo-object", "--style", "circles", "--style-extent", "3km")
    assert done.returncode == 2 and "--style-extent" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("text", ["3km", "abc", "0.5ft", "", "0m", "1.5m2", "m"])
def test_bad_style_extent_exits_2_with_one_line(tmp_path, capsys, text):
    from meshstyle.cli import main

    out = tmp_path / "run"
    assert main(["stylize", "demo-object", "--style", "circles", "--style-extent", text, "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--style-extent" in lines[0] and f"'{text}'" in lines[0], lines
    assert not out.exists()
