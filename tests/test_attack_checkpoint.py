"""Attack: a run folder from somewhere else carries a crafted or damaged checkpoint.pt.

--resume must never run code from it (weights_only loading), and must refuse, with exit 2 and one
line, any checkpoint that is not plain tensors of this version or whose inputs changed.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from meshstyle.errors import InputError
from meshstyle.stylization.optimize import CHECKPOINT_VERSION, load_checkpoint
from meshstyle.pipeline import check_fingerprints
from reliability_tools import error_line, run_cli


class _Payload:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _payload_checkpoint(folder: Path, marker: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "checkpoint.pt"
    torch.save({"version": CHECKPOINT_VERSION, "step": 0, "evil": _Payload(marker)}, path)
    return path


def test_pickle_payload_never_runs_in_the_loader(tmp_path):
    marker = tmp_path / "pwned"
    path = _payload_checkpoint(tmp_path / "run", marker)
    with pytest.raises(InputError) as caught:
        load_checkpoint(path)
    assert "refused" in str(caught.value)
    assert not marker.exists()


def test_pickle_payload_never_runs_through_the_cli(tmp_path):
    marker = tmp_path / "pwned"
    _payload_checkpoint(tmp_path / "run", marker)
    done = run_cli("stylize", "demo-object", "--style", "circles", "--out", tmp_path / "run", "--resume",
                   cache=tmp_path / "cache", timeout=120)
    assert done.returncode == 2, done.stderr
    line = error_line(done.stderr)
    assert "checkpoint.pt" in line and "refused" in line
    assert not marker.exists()
    assert not (tmp_path / "run" / ".meshstyle.lock").exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x02}q\x00." * 3])
def test_damaged_checkpoint_is_one_line(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_checkpoint(path)
    assert "checkpoint.pt" in str(caught.value) and "\n" not in str(caught.value)


def test_truncated_real_checkpoint_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"version": CHECKPOINT_VERSION, "step": 0, "texture": {"layers.0": torch.zeros(3, 8, 8)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        load_checkpoint(path)


@pytest.mark.parametrize("broken", [
    {"step": -1},
    {"step": 3},                                            # history has 0 records
    {"texture": {"layers.0": torch.full((3, 4, 4), float("nan"))}},
    {"texture": {}},
    {"rng": {"seed": "0"}},
    {"optimizer": [1, 2]},
])
def test_structurally_wrong_checkpoint_is_refused(tmp_path, broken):
    good = {"version": CHECKPOINT_VERSION, "step": 0, "rng": {"seed": 0, "step": 0},
            "texture": {"layers.0": torch.zeros(3, 4, 4)}, "optimizer": {"state": {}, "param_groups": []},
            "history": []}
    load_checkpoint(_saved(tmp_path / "good.pt", good))
    with pytest.raises(InputError):
        load_checkpoint(_saved(tmp_path / "bad.pt", {**good, **broken}))


def _saved(path: Path, checkpoint: dict) -> Path:
    torch.save(checkpoint, path)
    return path


def test_changed_inputs_are_named():
    stored = {"fingerprints": {"mesh": "a", "style": "b", "loss": "c", "atlas": "d", "cameras": "e"}}
    check_fingerprints(stored, {"mesh": "a", "style": "b", "loss": "c"}, None)
    with pytest.raises(InputError) as caught:
        check_fingerprints(stored, {"mesh": "a", "style": "X", "loss": "Y"}, Path("run/checkpoint.pt"))
    message = str(caught.value)
    assert "style image" in message and "loss/texture/optimiser config" in message and "mesh" not in message
    with pytest.raises(InputError):
        check_fingerprints({}, {"mesh": "a"}, None)   # an older checkpoint cannot be verified
