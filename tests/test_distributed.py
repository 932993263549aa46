"""Runs over torch.distributed (gloo on CPU), two processes launched by torchrun.

Every rank works in its own folder (rank0/, rank1/) with relative outputs and its own cache, so a
file written by the wrong rank, or a stage run twice, shows up as a non-empty rank1/.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from meshstyle.common import distributed
from meshstyle.batch import load_jobs
from meshstyle.config import OptimConfig
from meshstyle.errors import InputError
from meshstyle.stylization.optimize import check_schedule, views_for_step
from meshstyle.stylization.texture import LaplacianTexture

TINY = """
[cameras]
views = 4
holdout = 1
[raster]
image_height = 48
levels = 2
[texture]
size = 512
[loss]
style_scales = [1.0]
style_size = 64
[optim]
precision = "float32"
"""
ITERS = 24            # on 2 ranks: 12 steps of 2 views (optim.steps_scaler 0 = 1/ranks)
STEPS = 12
# Each rank enters its own folder and cache; `exec` keeps the rank's pid the one torchrun started.
PER_RANK = 'mkdir -p "$1/rank$RANK" && cd "$1/rank$RANK" && export MESHSTYLE_CACHE="$PWD/cache" && shift && exec "$@"'


def env() -> dict[str, str]:
    return {**os.environ, "MESHSTYLE_QUIET": "1", "OMP_NUM_THREADS": "1"}


def both_ends(stderr: str) -> str:
    """A failed job's stderr for the assertion message: the start too, where a rank that died
    first printed its own error, not only torchrun's summary at the end."""
    return stderr if len(stderr) <= 6000 else stderr[:3000] + "\n[...]\n" + stderr[-3000:]


def torchrun_args(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "--no-python", "bash", "-c", PER_RANK, "rank", str(folder), sys.executable, "-m", "meshstyle", *args]


def torchrun(folder: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_args(folder, *args), capture_output=True, text=True, env=env(), timeout=timeout)


def stylize_args(config: Path, *extra: str) -> list[str]:
    return ["stylize", "demo-room", "--style", "circles", "--config", str(config), "--iters", str(ITERS),
            "--out", "out", *extra]


def final_texture(run: Path) -> torch.Tensor:
    checkpoint = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    layers = checkpoint["texture"]
    texture = LaplacianTexture(torch.zeros(3, 512, 512), levels=len(layers))
    texture.load_state_dict(layers)
    with torch.no_grad():
        return texture().clamp(0, 1)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory, config) -> Path:
    folder = tmp_path_factory.mktemp("two_ranks")
    done = torchrun(folder, *stylize_args(config))
    assert done.returncode == 0, both_ends(done.stderr)
    return folder


def test_two_ranks_reproduce_one_process_with_twice_the_views(two_rank_run, config, tmp_path):
    single = subprocess.run([sys.executable, "-m", "meshstyle", *stylize_args(config), "--iters", str(STEPS),
                             "--set", "optim.views_per_step=2"],
                            cwd=tmp_path, capture_output=True, text=True, env=env(), timeout=300)
    assert single.returncode == 0, both_ends(single.stderr)
    parallel = two_rank_run / "rank0" / "out"
    run = json.loads((parallel / "run.json").read_text())
    assert run["info"]["distributed"] == {"world_size": 2, "backend": "gloo", "steps": STEPS, "views_per_step": 2}
    assert len(run["history"]) == STEPS
    assert len(json.loads((tmp_path / "out" / "run.json").read_text())["history"]) == STEPS
    difference = (final_texture(parallel) - final_texture(tmp_path / "out")).abs().max().item()
    assert difference < 1e-4
    initial = torch.from_numpy(np.asarray(run["history"][0]["total"]))
    assert initial > run["history"][-1]["total"]   # it did optimise


def test_only_rank_zero_prepares_and_writes(two_rank_run):
    rank0, rank1 = two_rank_run / "rank0", two_rank_run / "rank1"
    for name in ("run.json", "stylized.glb", "texture.png", "checkpoint.pt", "contact_sheet.png"):
        assert (rank0 / "out" / name).is_file()
    assert list((rank0 / "cache").rglob("*.npz")), "rank 0 should have unwrapped and rasterized"
    assert sorted(rank1.rglob("*")) == [], "rank 1 wrote files or ran a one-off stage"


def test_bad_input_under_torchrun_is_reported_once(config, tmp_path):
    (tmp_path / "rank0").mkdir()
    (tmp_path / "rank0" / "out").write_text("a file where the run folder should go")
    done = torchrun(tmp_path, *stylize_args(config))
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("meshstyle:")]
    assert lines == ["meshstyle: out: output path exists and is not a folder"], done.stderr[-2000:]


def _rank_pid(parent: int, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def _checkpoint_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:   # not there yet
        return 0


def test_killed_rank_stops_job_with_checkpoint_and_resume_finishes_the_same(two_rank_run, config, tmp_path):
    args = stylize_args(config, "--set", "optim.checkpoint_every_s=0.001")
    job = subprocess.Popen(torchrun_args(tmp_path, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env(), start_new_session=True)
    checkpoint = tmp_path / "rank0" / "out" / "checkpoint.pt"
    try:
        deadline = time.monotonic() + 240
        while _checkpoint_step(checkpoint) < 2:
            assert job.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.2)
        victim = _rank_pid(job.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode != 0
    assert "another rank of this job stopped" in stderr and "--resume" in stderr, both_ends(stderr)
    stopped_at = _checkpoint_step(checkpoint)
    assert 2 <= stopped_at < STEPS
    assert not (tmp_path / "rank0" / "out" / "run.json").exists()

    resumed = torchrun(tmp_path, *args, "--resume")
    assert resumed.returncode == 0, both_ends(resumed.stderr)
    run = json.loads((tmp_path / "rank0" / "out" / "run.json").read_text())
    assert len(run["history"]) == STEPS
    reference = final_texture(two_rank_run / "rank0" / "out")
    assert torch.equal(final_texture(tmp_path / "rank0" / "out"), reference)


def test_batch_two_scenes_two_styles_over_two_ranks(tmp_path, config):
    import imageio.v3 as iio
    import trimesh

    (tmp_path / "meshes").mkdir()
    trimesh.creation.icosphere(subdivisions=3, radius=0.5).export(tmp_path / "meshes" / "ball.ply")
    (tmp_path / "styles").mkdir()
    rng = np.random.default_rng(0)
    iio.imwrite(tmp_path / "styles" / "noise.png", (rng.random((64, 64, 3)) * 255).astype(np.uint8))
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(f'out = "runs"\nscenes = ["demo-room", "meshes/*.ply"]\nstyles = ["circles", "styles/*.png"]\n'
                    f'config = "{config}"\n[set]\n"optim.iters" = 2\n"cameras.views" = 2\n')
    run_env = {**env(), "MESHSTYLE_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "meshstyle", "batch", str(jobs)]
    first = subprocess.run(command, capture_output=True, text=True, env=run_env, timeout=300)
    assert first.returncode == 0, both_ends(first.stderr)
    names = ["demo-room__circles", "demo-room__noise", "ball__circles", "ball__noise"]
    for name in names:
        for file in ("run.json", "stylized.glb", "texture.png", "checkpoint.pt"):
            assert (tmp_path / "runs" / name / file).is_file(), (name, file)
    rows = [line.split() for line in first.stdout.splitlines() if line.split()[:1] and line.split()[0] in names]
    assert sorted(row[0] for row in rows) == sorted(names)          # one table, printed once
    assert {row[2] for row in rows} == {"done"} and {row[1] for row in rows} == {"0", "1"}
    written = {name: (tmp_path / "runs" / name / "run.json").stat().st_mtime_ns for name in names}

    again = subprocess.run(command, capture_output=True, text=True, env=run_env, timeout=300)
    assert again.returncode == 0, both_ends(again.stderr)
    assert "4 skipped" in again.stdout
    assert {name: (tmp_path / "runs" / name / "run.json").stat().st_mtime_ns for name in names} == written

    # An interrupted job (checkpoint, no run.json) is resumed onto the same atlas and texture.
    texture = (tmp_path / "runs" / "ball__noise" / "texture.png").read_bytes()
    (tmp_path / "runs" / "ball__noise" / "run.json").unlink()
    single = subprocess.run([sys.executable, "-m", "meshstyle", "batch", str(jobs)], capture_output=True,
                            text=True, env=run_env, timeout=300)
    assert single.returncode == 0, both_ends(single.stderr)
    assert "1 resumed, 3 skipped" in single.stdout
    assert (tmp_path / "runs" / "ball__noise" / "texture.png").read_bytes() == texture


# --- the pieces, without processes -------------------------------------------------------------

def test_backend_follows_the_device():
    assert distributed.choose_backend("cpu") == "gloo"
    assert distributed.choose_backend("cuda", nccl_available=True) == "nccl"
    assert distributed.choose_backend("cuda:1", nccl_available=True) == "nccl"
    assert distributed.choose_backend("cuda", nccl_available=False) == "gloo"


def test_schedule_scales_with_ranks():
    optim = OptimConfig(iters=200)
    assert distributed.scale_schedule(optim, 1).iters == 200
    assert distributed.scale_schedule(optim, 4).iters == 50
    assert distributed.scale_schedule(OptimConfig(iters=201), 2).iters == 101
    assert distributed.scale_schedule(OptimConfig(iters=200, steps_scaler=1.0), 4).iters == 200
    assert optim.iters == 200   # the run's config is left as the user gave it


def test_ranks_split_the_global_view_list():
    for step in range(7):
        whole = views_for_step(step, 5, 4, seed=3)
        shares = [distributed.World(rank=rank, size=2).share(whole, 2) for rank in range(2)]
        assert shares[0] + shares[1] == whole


def test_resume_refuses_another_views_per_step():
    checkpoint = {"rng": {"seed": 0, "step": 3, "views_per_step": 2, "iters": 6}}
    check_schedule(checkpoint, {"views_per_step": 2, "iters": 12}, None)
    with pytest.raises(InputError, match="views per step"):
        check_schedule(checkpoint, {"views_per_step": 1, "iters": 6}, None)


@pytest.mark.parametrize("text, problem", [
    ('scenes = ["demo-room"]\nstyles = ["circles"]\ncolour = 1\n', "unknown key colour"),
    ('scenes = ["nothing/*.ply"]\nstyles = ["circles"]\n', "matches nothing"),
    ('scenes = ["demo-room", "demo-room"]\nstyles = ["circles"]\n', "share the folder demo-room__circles"),
    ('scenes = ["demo-room"]\nstyles = ["circles"]\n[set]\n"optim.itres" = 3\n', "unknown config key"),
    ('scenes = []\nstyles = ["circles"]\n', "non-empty list"),
    ('scenes = ["no-such-scene"]\nstyles = ["circles"]\n', "neither a file"),
])
def test_jobs_file_is_checked_before_any_work(tmp_path, text, problem):
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(text)
    with pytest.raises(InputError, match=problem):
        load_jobs(jobs)


def test_jobs_file_names_and_overrides(tmp_path):
    (tmp_path / "styles").mkdir()
    for name in ("b.png", "a.jpg"):
        (tmp_path / "styles" / name).write_bytes(b"")
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('out = "o"\nscenes = ["demo-object"]\nstyles = ["strokes", "styles/*"]\n[set]\n"optim.iters" = 7\n')
    loaded = load_jobs(jobs)
    assert [job.name for job in loaded.jobs] == ["demo-object__strokes", "demo-object__a", "demo-object__b"]
    assert loaded.jobs[1].out == tmp_path / "o" / "demo-object__a"
    assert loaded.config.optim.iters == 7


def test_ranks_share_one_run_folder_and_a_second_job_into_it_is_refused(config, tmp_path):
    """Both ranks in one working folder, as users run torchrun: rank 0 takes the run lock, rank 1
    is not refused by it; a second job into the folder of a live run exits 2 with one line."""
    from meshstyle.outputs.run_lock import LOCK_NAME, _start_time

    def job(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                               "-m", "meshstyle", *stylize_args(config, *extra)], cwd=tmp_path, capture_output=True,
                              text=True, env={**env(), "MESHSTYLE_CACHE": str(tmp_path / "cache")}, timeout=300)

    first = job("--iters", "2")
    assert first.returncode == 0, both_ends(first.stderr)
    out = tmp_path / "out"
    assert (out / "run.json").is_file() and not (out / LOCK_NAME).exists()
    finished = (out / "run.json").read_bytes()

    # A live owner (this test process stands in for the first job's rank 0).
    (out / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                             "start_time": _start_time(os.getpid())}))
    second = job("--iters", "2", "--overwrite")
    assert second.returncode != 0
    lines = [line for line in second.stderr.splitlines() if line.startswith("meshstyle:")]
    assert len(lines) == 1 and f"another run (pid {os.getpid()})" in lines[0], second.stderr[-2000:]
    assert (out / "run.json").read_bytes() == finished and (out / LOCK_NAME).is_file()
