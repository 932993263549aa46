"""Attack: every bad config value a new user might type, through the real CLI.

Each is refused with exit 2 and one line naming the key (or option) in under 5 s, before any
stage ran (no run folder, no cache entry). Render and eval options and a run.json with broken
cameras get the same treatment.
"""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from reliability_tools import error_line, run_cli

STYLIZE_BAD = [
    (["--iters", "-5"], "optim.iters"),
    (["--iters", "0"], "optim.iters"),
    (["--texture-size", "3"], "texture.size"),
    (["--texture-size", "100000"], "texture.size"),
    (["--image-height", "0"], "raster.image_height"),
    (["--image-height", "100000"], "raster.image_height"),
    (["--views", "0"], "cameras.views"),
    (["--seed", "-1"], "seed"),
    (["--device", "tpu"], "device"),
    (["--set", "texture.pyramid_levels=0"], "texture.pyramid_levels"),
    (["--set", "optim.lr=nan"], "optim.lr"),
    (["--set", "optim.lr=-1"], "optim.lr"),
    (["--set", "optim.lr=inf"], "optim.lr"),
    (["--set", "loss.style_layers=relu9_9"], "loss.style_layers"),
    (["--set", "loss.content_layer=conv0"], "loss.content_layer"),
    (["--set", "loss.statistic=bogus"], "loss.statistic"),
    (["--set", "loss.content_target=video"], "loss.content_target"),
    (["--set", "raster.level_scale=0"], "raster.level_scale"),
    (["--set", "raster.levels=0"], "raster.levels"),
    (["--set", "cameras.kind=helicopter"], "cameras.kind"),
    (["--set", "cameras.min_coverage=2"], "cameras.min_coverage"),
    (["--set", "cameras.fov_deg=0"], "cameras.fov_deg"),
    (["--set", "optim.precision=float8"], "optim.precision"),
    (["--set", "optim.views_per_step=-1"], "optim.views_per_step"),
    (["--set", "loss.style_size=1"], "loss.style_size"),
    (["--set", "loss.style_weight=-3"], "loss.style_weight"),
    (["--set", "loss.style_scales=0"], "loss.style_scales"),
    (["--set", "no.such.key=1"], "no.such.key"),
    (["--set", "optim.iters"], "--set"),
    (["--set", "optim.iters=ten"], "optim.iters"),
    (["--set", "loss.depth_aware=maybe"], "loss.depth_aware"),
]


@pytest.mark.parametrize("args,key", STYLIZE_BAD, ids=[" ".join(a) for a, _ in STYLIZE_BAD])
def test_bad_stylize_value_exits_2_at_once(tmp_path, args, key):
    started = time.monotonic()
    done = run_cli("stylize", "demo-object", "--style", "circles", "--out", tmp_path / "run", *args,
                   cache=tmp_path / "cache", timeout=60)
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert key in error_line(done.stderr)
    assert seconds < 5.0, f"{seconds:.1f} s: something expensive ran before the check"
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("toml,key", [
    ("[optim]\niters = -1\n", "optim.iters"),
    ("[loss]\nstatistic = 3\n", "loss.statistic"),
    ("[optim\niters = 1\n", "invalid TOML"),
    ("[texture]\nsize = \"big\"\n", "texture.size"),
])
def test_bad_config_file_exits_2_at_once(tmp_path, toml, key):
    (tmp_path / "config.toml").write_text(toml)
    done = run_cli("stylize", "demo-object", "--style", "circles", "--out", tmp_path / "run",
                   "--config", tmp_path / "config.toml", cache=tmp_path / "cache", timeout=60)
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert key in line and "config.toml" in line
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A minimal run folder: a textured GLB plus a run.json with one good camera."""
    import trimesh

    from meshstyle.atlas.unwrap import project_charts
    from meshstyle.geometry.scene import TexturedMesh
    from meshstyle.outputs.export import write_glb
    from meshstyle.views.cameras import intrinsics_from_fov, look_at

    folder = tmp_path_factory.mktemp("run")
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    vertices, faces = np.asarray(box.vertices, float), np.asarray(box.faces, np.int64)
    texture = np.full((32, 32, 3), 0.6, np.float32)
    write_glb(TexturedMesh(vertices, faces, project_charts(vertices, faces, 32), texture), folder / "stylized.glb")
    camera = {"K": intrinsics_from_fov(40, 30, 60).tolist(),
              "cam_to_world": look_at(np.array([2.0, 1.5, 1.0]), np.zeros(3)).tolist(), "width": 40, "height": 30}
    (folder / "run.json").write_text(json.dumps({"scene": {"name": "box", "kind": "object", "up": [0, 0, 1]},
                                                 "cameras": [camera], "holdout": []}))
    return folder


RENDER_BAD = [
    (["--fov", "0"], "--fov"), (["--fov", "nan"], "--fov"), (["--fps", "0"], "--fps"),
    (["--supersample", "0"], "--supersample"), (["--supersample", "64"], "--supersample"),
    (["--size", "16384x16384"], "--size"), (["--size", "0x10"], "--size"), (["--size", "big"], "--size"),
    (["--frames", "0"], "--frames"), (["--video", "out.avi"], "out.avi"), (["--background", "purple"], "--background"),
    (["--cameras", "nowhere.json"], "nowhere.json"),
]


@pytest.mark.parametrize("args,key", RENDER_BAD, ids=[" ".join(a) for a, _ in RENDER_BAD])
def test_bad_render_option_exits_2_at_once(run_folder, tmp_path, args, key):
    started = time.monotonic()
    done = run_cli("render", run_folder, "--out", tmp_path / "frames", *args, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert key in error_line(done.stderr)
    assert time.monotonic() - started < 5.0
    assert not (tmp_path / "frames").exists()


def test_render_out_that_is_a_file(run_folder, tmp_path):
    (tmp_path / "frames").write_text("x")
    done = run_cli("render", run_folder, "--out", tmp_path / "frames", "--frames", "2", timeout=60)
    assert done.returncode == 2 and "not a folder" in error_line(done.stderr)


@pytest.mark.parametrize("camera_patch", [
    {"K": [[0, 0, 20], [0, 0, 15], [0, 0, 1]]},          # zero focal length
    {"K": "three by three"},
    {"cam_to_world": [[float("nan")] * 4] * 4},
    {"cam_to_world": [[0.0] * 4] * 4},                    # singular pose
    {"width": -40},
    {"height": 10**7},
    {"width": None},
])
def test_a_run_json_with_bad_cameras_is_refused_when_read(run_folder, tmp_path, camera_patch):
    from meshstyle.errors import InputError
    from meshstyle.outputs.run_folder import load_result

    folder = _with_camera(run_folder, tmp_path, camera_patch)
    with pytest.raises(InputError) as caught:
        load_result(folder)
    assert "run.json" in str(caught.value) and "cameras[0]" in str(caught.value)


@pytest.mark.parametrize("command", ["eval", "render"])
def test_eval_and_render_refuse_a_run_json_with_bad_cameras(run_folder, tmp_path, command):
    folder = _with_camera(run_folder, tmp_path, {"K": [[0, 0, 20], [0, 0, 15], [0, 0, 1]]})
    done = run_cli(command, folder, *(["--frames", "2", "--size", "32x24"] if command == "render" else []),
                   timeout=60)
    assert done.returncode == 2, done.stderr
    line = error_line(done.stderr)
    assert "run.json" in line and "cameras[0]" in line


def _with_camera(run_folder, tmp_path, camera_patch):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    run = json.loads((folder / "run.json").read_text())
    run["cameras"][0].update(camera_patch)
    (folder / "run.json").write_text(json.dumps(run))
    return folder


@pytest.mark.parametrize("content", ["{", "[]", '{"cameras": 5}'])
def test_a_broken_run_json_is_refused(run_folder, tmp_path, content):
    from meshstyle.errors import InputError
    from meshstyle.outputs.run_folder import load_result

    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    (folder / "run.json").write_text(content)
    with pytest.raises(InputError, match="run.json"):
        load_result(folder)


def _other_bad_inputs(run_folder, tmp):
    """(argv, the name the error line must hold) for each subcommand's bad paths and values."""
    (tmp / "text.glb").write_text("not a mesh")
    (tmp / "empty.obj").write_bytes(b"")
    (tmp / "old-run").mkdir()
    shutil.copy(run_folder / "stylized.glb", tmp / "old-run")
    (tmp / "old-run" / "run.json").write_text(json.dumps({"version": 99}))
    (tmp / "jobs.toml").write_text("out = 'x'\nscenes = [\n")
    (tmp / "unknown.toml").write_text("out = 'x'\nscenes = ['demo-object']\nstyles = ['circles']\ncolor = 1\n")
    return [
        (["eval", tmp / "nowhere"], "nowhere"),
        (["eval", tmp / "text.glb"], "text.glb"),
        (["eval", tmp / "old-run"], "run.json"),
        (["render", tmp / "nowhere", "--out", tmp / "frames"], "nowhere"),
        (["render", tmp / "empty.obj", "--out", tmp / "frames"], "empty.obj"),
        (["export", tmp / "nowhere", "--format", "glb"], "nowhere"),
        (["export", tmp / "text.glb", "--format", "obj", "--out", tmp / "e.obj"], "text.glb"),
        (["view", tmp / "nowhere"], "nowhere"),
        (["view", tmp / "old-run"], "run.json"),
        (["view", run_folder, "--port", "70000"], "--port"),
        (["batch", tmp / "none.toml"], "none.toml"),
        (["batch", tmp / "jobs.toml"], "jobs.toml"),
        (["batch", tmp / "unknown.toml"], "unknown.toml"),
        (["config", "--bogus"], "--bogus"),
        (["stylize", tmp / "nowhere.obj", "--style", "circles"], "nowhere.obj"),
        (["stylize", "demo-object", "--style", tmp / "nowhere.png"], "nowhere.png"),
    ]


@pytest.mark.parametrize("index", range(16))
def test_every_subcommand_refuses_bad_input_at_once(run_folder, tmp_path, index):
    """Checked before torch and open3d load: eval took ~7 s to say "no such file" before."""
    args, name = _other_bad_inputs(run_folder, tmp_path)[index]
    started = time.monotonic()
    done = run_cli(*args, cwd=tmp_path, cache=tmp_path / "cache", timeout=60)
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert name in error_line(done.stderr)
    assert seconds < 5.0, f"{seconds:.1f} s: something expensive ran before the check"
    assert not (tmp_path / "frames").exists() and not (tmp_path / "x").exists()
