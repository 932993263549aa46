"""What gets installed: every subpackage of meshstyle/, the built-in scenes as meshstyle.scenes, and
no generic top-level import name (a user's own scenes/ folder must not shadow ours, nor ours theirs)."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_installed_and_nothing_else_at_top_level():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    present = {"meshstyle"} | {f"meshstyle.{init.parent.name}" for init in (ROOT / "meshstyle").glob("*/__init__.py")}
    assert present | {"meshstyle.scenes"} == set(listed)
    assert {name.split(".")[0] for name in listed} == {"meshstyle"}


def test_a_users_own_scenes_folder_does_not_shadow_the_built_in_scenes(tmp_path):
    (tmp_path / "scenes").mkdir()
    (tmp_path / "scenes" / "__init__.py").write_text("MINE = True\n")
    code = ("import meshstyle as ms, scenes; assert scenes.MINE; "
            "assert callable(ms.scenes.demo_room) and ms.scenes.__name__ == 'meshstyle.scenes'")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
