"""CLI contracts of docs/DESIGN.md: exit codes, one-line messages, config precedence."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshstyle import __version__
from meshstyle.config import StylizeConfig, build_config
from meshstyle.errors import InputError


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, MESHSTYLE_QUIET="1")
    return subprocess.run([sys.executable, "-m", "meshstyle", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


def test_version():
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"meshstyle {__version__}"


@pytest.mark.parametrize("command", ["demo", "stylize", "render", "export", "eval", "scenes"])
def test_help_on_every_command(command):
    done = run_cli(command, "--help")
    assert done.returncode == 0
    assert f"meshstyle {command}" in done.stdout


def test_scenes_lists_both_builtin_scenes():
    done = run_cli("scenes")
    assert done.returncode == 0
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert names[:2] == ["demo-room", "demo-object"] or {"demo-room", "demo-object"} <= set(names)


def test_stylize_missing_scene_names_the_file(tmp_path):
    done = run_cli("stylize", "missing.ply", "--style", "x.png", cwd=tmp_path)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "missing.ply" in line


def test_stylize_missing_style_names_the_file(tmp_path):
    done = run_cli("stylize", "demo-object", "--style", "nowhere.png", cwd=tmp_path)
    assert done.returncode == 2
    assert "nowhere.png" in one_line(done.stderr)


def test_usage_errors_exit_2_in_one_line(tmp_path):
    for args in (["frobnicate"], ["stylize"], ["export", str(tmp_path), "--format", "fbx"]):
        done = run_cli(*args)
        assert done.returncode == 2, args
        one_line(done.stderr)


def test_unknown_config_key_and_bad_value(tmp_path):
    done = run_cli("stylize", "demo-object", "--style", "circles", "--set", "optim.nope=1", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "optim.nope" in one_line(done.stderr)
    done = run_cli("stylize", "demo-object", "--style", "circles", "--set", "optim.iters=many", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "optim.iters" in one_line(done.stderr)


def test_invalid_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\niters = 3\n")
    done = run_cli("stylize", "demo-object", "--style", "circles", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "bad.toml" in one_line(done.stderr)


def test_refuses_to_overwrite_a_run_folder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{}")
    done = run_cli("stylize", "demo-object", "--style", "circles", "--out", str(out))
    assert done.returncode == 2
    assert "--overwrite" in one_line(done.stderr)
    done = run_cli("stylize", "demo-object", "--style", "circles", "--out", str(out), "--resume")
    assert done.returncode == 2
    assert "checkpoint" in one_line(done.stderr)


def test_render_and_eval_reject_non_results(tmp_path):
    (tmp_path / "empty").mkdir()
    for command in ("render", "eval"):
        done = run_cli(command, str(tmp_path / "empty"))
        assert done.returncode == 2
        assert "empty" in one_line(done.stderr)
    done = run_cli("export", str(tmp_path / "nothing.glb"), "--format", "glb")
    assert done.returncode == 2
    assert "nothing.glb" in one_line(done.stderr)


def test_config_precedence_defaults_toml_set_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("seed = 7\n[optim]\niters = 30\nlr = 0.5\n[loss]\nstyle_weight = 3.0\n[cameras]\nviews = 5\n")
    config = build_config(toml, ["optim.iters=20", "loss.style_weight=4", "cameras.views=6"], {"iters": 10, "views": None})
    defaults = StylizeConfig()
    assert config.optim.iters == 10            # flag beats --set beats TOML
    assert config.loss.style_weight == 4.0     # --set beats TOML
    assert config.cameras.views == 6           # a flag left unset does not override
    assert config.optim.lr == 0.5              # TOML beats defaults
    assert config.seed == 7
    assert config.texture.size == defaults.texture.size


def test_config_types_are_checked():
    with pytest.raises(InputError, match="loss.depth_aware"):
        build_config(None, ["loss.depth_aware=maybe"])
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        build_config(None, ["iters"])
    config = build_config(None, ["loss.depth_aware=false", "loss.style_layers=relu1_1,relu3_1"])
    assert config.loss.depth_aware is False
    assert config.loss.style_layers == ("relu1_1", "relu3_1")
