"""Attack: "same seed, same output" on a cold cache, for a mesh that needs the unwrapper.

demo-object is curved, so its atlas comes from the unwrapper (xatlas), not from the projected charts
of box-like scenes. Two fresh runs, each into its own folder with an emptied cache of its own, must
give the same atlas and the same texture bit for bit; with open3d's uvatlas (MESHSTYLE_UNWRAPPER=
uvatlas) they differ, because uvatlas seeds its own random generator (docs/TRAPS.md).
"""
from __future__ import annotations

import json
import shutil

import torch

from meshstyle.atlas.unwrap import unwrapper
from reliability_tools import TINY, run_cli

ARGS = ["stylize", "demo-object", "--style", "circles", "--iters", "3", "--seed", "11", *TINY]


def test_two_cold_cache_runs_give_the_same_texture_bit_for_bit(tmp_path):
    assert unwrapper() == "xatlas", "xatlas is a dependency (pyproject.toml); uvatlas is not deterministic"
    results = []
    for name in ("first", "second"):
        cache = tmp_path / "cache"
        shutil.rmtree(cache, ignore_errors=True)      # emptied before each run
        done = run_cli(*ARGS, "--out", tmp_path / name, cache=cache, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        run = json.loads((tmp_path / name / "run.json").read_text())
        assert run["info"]["atlas"]["method"] == "xatlas" and not run["info"]["atlas"]["cached"]
        results.append(tmp_path / name)

    first, second = results
    assert (first / "texture.png").read_bytes() == (second / "texture.png").read_bytes()
    # The atlas each run used is kept in its checkpoint (a resume never depends on the cache).
    uv = [torch.load(folder / "checkpoint.pt", weights_only=True)["atlas"]["uv"] for folder in results]
    assert torch.equal(uv[0], uv[1])
