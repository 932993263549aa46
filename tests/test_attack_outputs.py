"""Attack: outputs and caches where nothing can be written, or where the disk fills up mid-run.

Output paths are checked before any work (exit 2 at once, nothing created); a disk that fills
during the run ends it with exit 2 and leaves no run.json, no temporary files and no lock; a
read-only or full cache is worked around with one warning, never a failed command.
"""
from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from meshstyle.outputs.run_lock import LOCK_NAME
from reliability_tools import TINY, LiveRun, error_line, no_temp_files, run_cli


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    """A small tmpfs at `path` (needs root and mount rights); skips the test where it cannot mount."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(scope="module")
def bare_glb(tmp_path_factory) -> Path:
    """A textured GLB made elsewhere (render/export/eval accept those): a box with a checker."""
    import trimesh

    from meshstyle.atlas.unwrap import project_charts
    from meshstyle.geometry.scene import TexturedMesh
    from meshstyle.outputs.export import write_glb

    box = trimesh.creation.box(extents=(1.0, 0.8, 0.6))
    vertices, faces = np.asarray(box.vertices, float), np.asarray(box.faces, np.int64)
    uv = project_charts(vertices, faces, 64)
    texture = np.indices((64, 64)).sum(axis=0)[..., None].repeat(3, axis=2) % 2 * 0.8 + 0.1
    path = tmp_path_factory.mktemp("glb") / "box.glb"
    write_glb(TexturedMesh(vertices, faces, uv, texture.astype(np.float32)), path)
    return path


# --------------------------------------------------------------------------- bad output paths


@pytest.mark.parametrize("command", ["stylize", "render", "export"])
def test_output_under_a_file_fails_before_any_work(tmp_path, bare_glb, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = {"stylize": ["stylize", "demo-object", "--style", "circles", "--out", blocker / "run"],
            "render": ["render", bare_glb, "--out", blocker / "frames", "--frames", "2", "--size", "32x24"],
            "export": ["export", bare_glb, "--format", "obj", "--out", blocker / "x.obj"]}[command]
    started = time.monotonic()
    done = run_cli(*args, cache=tmp_path / "cache", timeout=120)
    assert done.returncode == 2, done.stderr
    line = error_line(done.stderr)
    assert "a-file" in line and "is a file, not a folder" in line
    assert time.monotonic() - started < 30
    assert blocker.read_text() == "not a folder"


def test_output_in_proc_fails_before_any_work(tmp_path):
    done = run_cli("stylize", "demo-object", "--style", "circles", "--out", "/proc/meshstyle-run", timeout=120)
    assert done.returncode == 2
    assert "/proc/meshstyle-run" in error_line(done.stderr)


def test_read_only_outputs_fail_before_any_work(tmp_path, bare_glb):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as mount:
        if mount is None:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        for args in (["stylize", "demo-object", "--style", "circles", "--out", mount / "run"],
                     ["render", bare_glb, "--out", mount / "frames", "--frames", "2", "--size", "32x24"],
                     ["export", bare_glb, "--format", "glb", "--out", mount / "x.glb"]):
            done = run_cli(*args, cache=tmp_path / "cache", timeout=120)
            assert done.returncode == 2, (args, done.stderr)
            assert "not writable" in error_line(done.stderr) and "Read-only file system" in done.stderr
        assert list(mount.iterdir()) == []


def test_too_little_space_is_refused_up_front(tmp_path):
    with tmpfs(tmp_path / "small", "2m") as mount:
        if mount is None:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        done = run_cli("stylize", "demo-object", "--style", "circles", "--out", mount / "run", timeout=120)
        assert done.returncode == 2
        assert "MiB free" in error_line(done.stderr)
        assert list(mount.iterdir()) == []


# --------------------------------------------------------------------------- the disk fills mid-run


def _fill(folder: Path) -> None:
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as handle:
        while True:
            handle.write(b"\0" * 2**20)
            handle.flush()


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of death by signal
    return apply


def test_disk_full_mid_run_leaves_an_incomplete_folder_and_no_debris(tmp_path):
    args = ["stylize", "demo-object", "--style", "circles", "--iters", "3", *TINY]
    with tmpfs(tmp_path / "disk", "24m") as mount:
        if mount is not None:
            out = mount / "run"
            run = LiveRun(*args, "--out", out, cache=tmp_path / "cache")
            try:
                run.wait_for(" 1/3 ")            # the checks passed, the optimisation runs
                _fill(mount)                     # ... and now the disk is full
                code = run.wait(600)
            finally:
                run.kill()
            stderr = run.text()
        else:   # no mount rights: a file-size limit makes every large write fail the same way
            out = tmp_path / "run"
            run = LiveRun(*args, "--out", out, cache=tmp_path / "cache", preexec_fn=_limit_file_size(150_000))
            try:
                code = run.wait(600)
            finally:
                run.kill()
            stderr = run.text()
        assert code == 2, stderr[-3000:]
        assert "Traceback" not in stderr and "internal error" not in stderr
        assert run.final_lines()[-1].startswith("meshstyle: ")
        assert not (out / "run.json").exists()
        assert not (out / LOCK_NAME).exists()
        assert no_temp_files(out.parent) == []
        render = run_cli("render", out, "--frames", "2", "--size", "32x24", "--out", tmp_path / "frames",
                         timeout=120)
        assert render.returncode == 2
        error_line(render.stderr)


# --------------------------------------------------------------------------- unusable caches


def _render(glb: Path, out: Path, cache: Path) -> subprocess.CompletedProcess:
    return run_cli("render", glb, "--cameras", "orbit", "--frames", "2", "--size", "48x32", "--out", out,
                   cache=cache, timeout=300)


def test_read_only_cache_degrades_to_no_cache_with_one_warning(tmp_path, bare_glb):
    with tmpfs(tmp_path / "ro-cache", "1m", read_only=True) as mount:
        cache = mount if mount is not None else tmp_path / "cache-is-a-file"
        if mount is None:
            cache.write_text("a file where the cache folder should be")
        done = _render(bare_glb, tmp_path / "frames", cache)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "continuing without a cache" in warnings[0], done.stderr
        assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["0000.png", "0001.png"]


def test_full_cache_degrades_to_no_cache_with_one_warning(tmp_path, bare_glb):
    with tmpfs(tmp_path / "full-cache", "1m") as mount:
        if mount is None:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        (mount / "render").mkdir()
        _fill(mount)
        done = _render(bare_glb, tmp_path / "frames", mount)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "continuing without a cache" in warnings[0], done.stderr
        assert len(list((tmp_path / "frames").iterdir())) == 2
        assert no_temp_files(mount) == []
