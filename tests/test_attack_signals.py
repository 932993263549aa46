"""Attack: the scheduler sends SIGTERM mid-run, the cache is emptied, and the run is resumed.

SIGTERM gets Ctrl-C's treatment (checkpoint, exit 143, resumable); the resumed run on a cold cache
equals an uninterrupted run bit for bit (the atlas comes from the checkpoint, never from a fresh
unwrap: uvatlas, used where xatlas is missing, differs on every call). A signal before optimisation claims no checkpoint.
"""
from __future__ import annotations

import json
import shutil
import signal

import torch

from meshstyle.atlas.unwrap import unwrapper
from meshstyle.outputs.run_lock import LOCK_NAME
from reliability_tools import TINY, LiveRun, no_temp_files, run_cli

ITERS = "5"
ARGS = ["stylize", "demo-object", "--style", "circles", "--iters", ITERS, "--seed", "3",
        "--set", "optim.checkpoint_every_s=100000", *TINY]


def _history(folder):
    return [{k: v for k, v in record.items() if k != "seconds"}
            for record in json.loads((folder / "run.json").read_text())["history"]]


def test_sigterm_then_cold_cache_resume_equals_an_uninterrupted_run(tmp_path):
    warm = tmp_path / "cache"
    baseline = run_cli(*ARGS, "--out", tmp_path / "baseline", cache=warm, timeout=600)
    assert baseline.returncode == 0, baseline.stderr

    out = tmp_path / "run"
    run = LiveRun(*ARGS, "--out", out, cache=warm)
    try:
        run.wait_for(f" 1/{ITERS} ")         # one optimisation step done
        run.signal(signal.SIGTERM)
        code = run.wait(300)
    finally:
        run.kill()
    final = run.final_lines()
    assert code == 143, run.text()[-2000:]
    assert "Traceback" not in run.text()
    assert final[-1].startswith("meshstyle: terminated (SIGTERM) at step ")
    assert "checkpoint written to" in final[-1] and "--resume" in final[-1]
    assert (out / "checkpoint.pt").is_file() and not (out / "run.json").exists()
    assert not (out / LOCK_NAME).exists() and no_temp_files(out) == []
    stopped_at = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert 1 <= stopped_at < int(ITERS)

    shutil.rmtree(warm)                      # cold cache: atlas and fragments must not come from it
    cold = tmp_path / "cold-cache"
    resumed = run_cli(*ARGS, "--out", out, "--resume", cache=cold, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert not (cold / "atlas").exists() or not any((cold / "atlas").iterdir()), "resume unwrapped again"

    expected = torch.load(tmp_path / "baseline" / "checkpoint.pt", weights_only=True)
    got = torch.load(out / "checkpoint.pt", weights_only=True)
    assert torch.equal(expected["atlas"]["uv"], got["atlas"]["uv"])
    assert expected["texture"].keys() == got["texture"].keys()
    for key in expected["texture"]:
        assert torch.equal(expected["texture"][key], got["texture"][key]), key
    assert (tmp_path / "baseline" / "texture.png").read_bytes() == (out / "texture.png").read_bytes()
    assert _history(tmp_path / "baseline") == _history(out)

    # The checkpoint remembers its inputs: another style is refused, saying what changed.
    changed = run_cli(*[("strokes" if a == "circles" else a) for a in ARGS], "--out", out, "--resume",
                      cache=cold, timeout=300)
    assert changed.returncode == 2
    assert "style image changed" in changed.stderr and "Traceback" not in changed.stderr


def test_signal_before_optimisation_claims_no_checkpoint(tmp_path):
    out = tmp_path / "run"
    run = LiveRun(*ARGS, "--out", out, cache=tmp_path / "empty-cache")
    try:
        run.wait_for(f"{unwrapper()}, ")     # a cold cache: the unwrap runs in a child process
        run.signal(signal.SIGINT)
        code = run.wait(120)
    finally:
        run.kill()
    assert code == 130, run.text()[-2000:]
    final = run.final_lines()[-1]
    assert "before any checkpoint was written" in final and "checkpoint written" not in final
    assert not out.exists()                  # the folder this run created is gone again
