"""Attack: several runs, dead runs and half-written runs in one --out folder.

A run owns its folder (lock taken before any work; a second run refused at once with exit 2; a
lock left by a killed process reported and taken over); a folder without run.json is incomplete
and refused by render/eval/export; leftovers of a killed writer are removed; a run interrupted
during its final save is completed by --resume.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from meshstyle.outputs.run_lock import LOCK_NAME, _start_time
from reliability_tools import TINY, LiveRun, error_line, no_temp_files, run_cli


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run that finished while a second run tried the same folder (shared by the tests below)."""
    root = tmp_path_factory.mktemp("concurrent")
    out, cache = root / "run", root / "cache"
    first = LiveRun("stylize", "demo-object", "--style", "circles", "--out", out, "--iters", "2", "--seed", "7",
                    *TINY, cache=cache)
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_NAME).exists():
            assert first.process.poll() is None, first.text()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = time.monotonic()
        second = run_cli("stylize", "demo-object", "--style", "strokes", "--out", out, "--iters", "2",
                         "--seed", "8", "--overwrite", *TINY, cache=cache, timeout=120)
        second_seconds = time.monotonic() - started
        code = first.wait(600)
    finally:
        first.kill()
    return {"out": out, "cache": cache, "first_code": code, "first_stderr": first.text(), "second": second,
            "second_seconds": second_seconds, "root": root}


def test_second_run_is_refused_at_once_while_the_first_completes(finished_run):
    second = finished_run["second"]
    assert second.returncode == 2, second.stderr
    line = error_line(second.stderr)
    assert "another run (pid" in line and str(finished_run["out"]) in line
    assert finished_run["first_code"] == 0, finished_run["first_stderr"][-3000:]
    out = finished_run["out"]
    run = json.loads((out / "run.json").read_text())
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    # Everything in the folder is the first run's: its seed, its style, its step count.
    assert run["seed"] == 7 and run["config"]["seed"] == 7 and checkpoint["rng"]["seed"] == 7
    assert len(run["history"]) == 2 and checkpoint["step"] == 2
    assert not (out / LOCK_NAME).exists()
    assert no_temp_files(out) == []


def test_incomplete_folder_is_refused_by_render_eval_export(finished_run, tmp_path):
    incomplete = tmp_path / "incomplete"
    shutil.copytree(finished_run["out"], incomplete)
    (incomplete / "run.json").unlink()
    for args in (["render", incomplete, "--frames", "2", "--size", "32x24"], ["eval", incomplete],
                 ["export", incomplete, "--format", "glb", "--out", tmp_path / "x.glb"]):
        done = run_cli(*args, cache=finished_run["cache"], timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert "incomplete run" in error_line(done.stderr)
    assert not (tmp_path / "x.glb").exists() and not (incomplete / "render").exists()


def test_interrupted_final_save_is_completed_by_resume(finished_run, tmp_path):
    """What a Ctrl-C during the final save leaves: the final checkpoint, some outputs, no run.json."""
    folder = tmp_path / "run"
    shutil.copytree(finished_run["out"], folder)
    (folder / "run.json").unlink()
    (folder / "texture.png").unlink()
    (folder / ".stylized.abc123.tmp.glb").write_bytes(b"half a glb")
    done = run_cli("stylize", "demo-object", "--style", "circles", "--out", folder, "--iters", "2", "--seed", "7",
                   "--resume", *TINY, cache=finished_run["cache"], timeout=600)
    assert done.returncode == 0, done.stderr
    assert (folder / "run.json").is_file() and (folder / "texture.png").is_file()
    assert no_temp_files(folder) == []
    assert json.loads((folder / "run.json").read_text())["history"] == \
        json.loads((finished_run["out"] / "run.json").read_text())["history"]


def _lock(folder: Path, **owner) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps(owner))
    return folder / LOCK_NAME


def _empty_mesh(folder):
    """A mesh that exists but is only read (and refused) after the run took its lock: every other
    input is checked before the lock, so this is what lets a test see the lock taken and released."""
    (folder / "empty.obj").write_bytes(b"")
    return folder / "empty.obj"


def test_stale_lock_of_a_dead_process_is_reported_and_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    lock = _lock(out, pid=dead.pid, host=socket.gethostname(), start_time="1")
    (out / ".checkpoint.k2j3.tmp.pt").write_bytes(b"half a checkpoint")   # left by the killed writer
    (out / "views").mkdir()
    (out / "views" / ".0001.zz.tmp.png").write_bytes(b"half a view")
    done = run_cli("stylize", _empty_mesh(tmp_path), "--style", "circles", "--out", out, timeout=120)
    assert done.returncode == 2
    assert "empty.obj" in error_line(done.stderr)
    assert f"removed a stale run lock (process {dead.pid}, no longer running)" in done.stderr
    assert not lock.exists()
    assert no_temp_files(out) == []


@pytest.mark.parametrize("garbage", ["", "{not json", "[1, 2]"])
def test_garbled_lock_is_stale(tmp_path, garbage):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(garbage)
    done = run_cli("stylize", _empty_mesh(tmp_path), "--style", "circles", "--out", out, timeout=120)
    assert done.returncode == 2 and "removed a stale run lock" in done.stderr
    assert not (out / LOCK_NAME).exists()


def test_live_lock_refuses_and_a_reused_pid_does_not(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = _lock(tmp_path / "live", pid=holder.pid, host=socket.gethostname(), start_time=_start_time(holder.pid))
        done = run_cli("stylize", "demo-object", "--style", "circles", "--out", live.parent, timeout=120)
        assert done.returncode == 2
        assert f"another run (pid {holder.pid})" in error_line(done.stderr)
        assert live.exists()                       # someone else's lock is never removed
        # Same pid, different start time: the pid was reused by an unrelated process.
        reused = _lock(tmp_path / "reused", pid=holder.pid, host=socket.gethostname(), start_time="12345")
        done = run_cli("stylize", _empty_mesh(tmp_path), "--style", "circles", "--out", reused.parent, timeout=120)
        assert "removed a stale run lock" in done.stderr and not reused.exists()
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_another_host_refuses(tmp_path):
    lock = _lock(tmp_path / "run", pid=4242, host="some-other-machine", start_time="1")
    done = run_cli("stylize", "demo-object", "--style", "circles", "--out", lock.parent, timeout=120)
    assert done.returncode == 2
    assert "some-other-machine" in error_line(done.stderr) and lock.exists()


def test_refused_run_leaves_no_folder_behind(tmp_path):
    done = run_cli("stylize", "demo-object", "--style", "nowhere.png", "--out", tmp_path / "new" / "run",
                   timeout=120)
    assert done.returncode == 2
    assert not (tmp_path / "new" / "run").exists()
