"""The README's Python API snippet is code that runs, as written (tiny settings in settings.toml)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import trimesh

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = ("[optim]\niters = 1\n[cameras]\nviews = 2\nholdout = 0\n[texture]\nsize = 128\n"
        "[raster]\nimage_height = 48\nlevels = 1\n[loss]\nstyle_size = 64\nstyle_scales = [1.0]\n")


def api_snippet() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)


def test_readme_api_snippet_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trimesh.creation.icosphere(subdivisions=2).export("room.ply")
    rng = np.random.default_rng(0)
    iio.imwrite("starry.jpg", (rng.random((64, 64, 3)) * 255).astype(np.uint8))
    Path("settings.toml").write_text(TINY)
    namespace: dict = {}
    exec(compile(api_snippet(), str(README), "exec"), namespace)
    frames = namespace["frames"]
    assert len(frames) == 36 and frames[0].shape == (480, 640, 3)      # the CLI's render defaults
    assert json.loads(Path("out/run.json").read_text())["config"]["optim"]["iters"] == 1
    assert Path("out/stylized.glb").is_file()


def test_library_and_cli_share_camera_defaults():
    from meshstyle.views.cameras import DEFAULT_FOV_DEG, DEFAULT_HEIGHT, DEFAULT_WIDTH
    from meshstyle.cli import build_parser
    from meshstyle.config import CameraConfig

    render = build_parser().parse_args(["render", "x"])
    assert render.size == f"{DEFAULT_WIDTH}x{DEFAULT_HEIGHT}"
    assert DEFAULT_FOV_DEG == CameraConfig().fov_deg == 70.0


def test_frame_flags_offer_what_frames_accepts():
    from typing import get_args

    from meshstyle import config
    from meshstyle.geometry import frames

    assert frames.UP_CHOICES == get_args(config.UpAxis)
    assert set(frames.UNITS) == set(get_args(config.Unit))
    assert frames.OBJ_FRAMES == get_args(config.ObjFrame)


def test_api_names_stay_functions_after_their_namesake_packages_are_imported():
    """`meshstyle.stylize` is also a subpackage: `ms.stylize(...)` must work after importing it."""
    import subprocess
    import sys

    code = ("from meshstyle.stylization import optimize; import meshstyle.outputs.render, meshstyle as ms; "
            "assert callable(ms.render) and callable(ms.stylize) and optimize.__name__.endswith('optimize')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
