"""The CLI as a user runs it: stylize a built-in scene, then render, export and eval the run folder.

One small real run (real mesh, real VGG weights, real GLB) is shared by the tests of this module.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

RUN_FILES = ("stylized.glb", "stylized.obj", "stylized.mtl", "texture.png", "contact_sheet.png", "run.json",
             "checkpoint.pt", "initial_texture.png", "style.png")


def meshstyle(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MESHSTYLE_QUIET="1")
    return subprocess.run([sys.executable, "-m", "meshstyle", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    config = root / "small.toml"
    # TOML < --set < flags: each level overrides one value of the one below.
    config.write_text("seed = 5\n[optim]\niters = 9\nlr = 0.03\n[cameras]\nviews = 2\nholdout = 1\n"
                      "[texture]\nsize = 256\n[raster]\nimage_height = 80\nlevels = 2\n")
    out = root / "run"
    done = meshstyle("stylize", "demo-object", "--style", "circles", "--config", str(config),
                     "--set", "optim.iters=7", "--set", "optim.lr=0.04", "--iters", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_run_folder_is_complete(run_folder):
    for name in RUN_FILES:
        assert (run_folder / name).is_file(), name
    views = sorted((run_folder / "views").glob("*.png"))
    assert views and views[0].name == "0000.png"
    assert not list(run_folder.rglob(".*tmp*")), "temporary files left behind"


def test_run_json_records_the_config_actually_used(run_folder):
    run = json.loads((run_folder / "run.json").read_text())
    assert run["config"]["optim"]["iters"] == 3        # flag beats --set and TOML
    assert run["config"]["optim"]["lr"] == 0.04        # --set beats TOML
    assert run["config"]["texture"]["size"] == 256     # TOML beats defaults
    assert run["seed"] == 5
    assert {"torch", "numpy", "open3d", "trimesh"} <= set(run["versions"])
    assert run["version"] == 1 and len(run["history"]) == 3
    assert all(np.isfinite(step["total"]) for step in run["history"])
    assert {"atlas", "cameras", "raster", "optimise"} <= set(run["timings"])
    assert run["inputs"]["mesh_fingerprint"] and run["inputs"]["style_fingerprint"]
    # views_per_step = 0 (auto) is recorded as what it became: one view per step on a CPU.
    assert run["config"]["optim"]["views_per_step"] == 0 and run["info"]["views_per_step"] == 1


def test_glb_reimports_with_its_texture_and_pbr_material(run_folder):
    loaded = trimesh.load(run_folder / "stylized.glb", force="mesh")
    material = loaded.visual.material
    assert material.metallicFactor == 0 and material.roughnessFactor == 1
    texture = np.asarray(material.baseColorTexture)
    assert texture.shape[:2] == (256, 256)
    written = iio.imread(run_folder / "texture.png")
    assert np.abs(texture[..., :3].astype(int) - written[..., :3].astype(int)).max() <= 1
    assert len(loaded.faces) > 10_000


def test_second_run_into_the_folder_refuses(run_folder):
    done = meshstyle("stylize", "demo-object", "--style", "circles", "--out", str(run_folder))
    assert done.returncode == 2
    assert "--overwrite" in done.stderr


def test_render_writes_views_and_video(run_folder, tmp_path):
    video = tmp_path / "orbit.mp4"
    done = meshstyle("render", str(run_folder), "--cameras", "orbit", "--frames", "5", "--size", "65x49",
                     "--out", str(tmp_path / "frames"), "--video", str(video))
    assert done.returncode == 0, done.stderr
    frames = sorted((tmp_path / "frames").glob("*.png"))
    assert [path.name for path in frames] == [f"{index:04d}.png" for index in range(5)]
    assert iio.imread(frames[0]).shape == (49, 65, 3)
    decoded = list(iio.imiter(video, plugin="FFMPEG"))
    assert len(decoded) == 5
    assert decoded[0].shape[:2] == (50, 66)  # padded to even sizes for the encoder


def test_export_obj_and_glb_from_the_run(run_folder, tmp_path):
    for fmt in ("obj", "glb"):
        out = tmp_path / f"room.{fmt}"
        done = meshstyle("export", str(run_folder), "--format", fmt, "--out", str(out))
        assert done.returncode == 0, done.stderr
        mesh = trimesh.load(out, force="mesh")
        assert len(mesh.faces) > 10_000
    assert "Kd 1 1 1" in (tmp_path / "room.mtl").read_text()
    assert (tmp_path / "room.png").is_file()
    done = meshstyle("export", str(run_folder), "--format", "obj", "--out", str(tmp_path / "wrong.glb"))
    assert done.returncode == 2


def test_eval_json_has_snake_case_metric_keys(run_folder):
    done = meshstyle("eval", str(run_folder), "--json", "--metric", "seams", "--metric", "coverage")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert any(key.startswith("seams.") for key in metrics)
    assert not any(key.startswith(("style.", "circles.")) for key in metrics)  # only what was asked
    assert 0 < metrics["coverage.seen_share"] <= 1
    assert all(key == key.lower() and " " not in key for key in metrics)
    assert (run_folder / "eval.json").is_file()
    done = meshstyle("eval", str(run_folder), "--metric", "sparkle")
    assert done.returncode == 2 and "sparkle" in done.stderr
