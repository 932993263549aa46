"""run.json as a versioned RunInfo: written with its version, read back typed, other versions refused."""
from __future__ import annotations

import json
import math

import pytest

from meshstyle.errors import InputError
from meshstyle.outputs.run_info import RUN_VERSION, RunInfo, read_run_info
from meshstyle.stylization.optimize import StepRecord, steps_per_second
from test_cli import one_line, run_cli


def step(number: int) -> StepRecord:
    return StepRecord(step=number, total=1.5, style=1.0, content=0.5, tv=0.0, regularizer=0.0, lr=0.01,
                      seconds=0.25)


def test_run_info_round_trips_with_its_version_and_keeps_keys_it_does_not_name(tmp_path):
    info = RunInfo(meshstyle="0.1.0", seed=3, scene={"kind": "room"}, history=[step(1), step(2)],
                   extra={"notes": {"argv": ["meshstyle"]}})
    data = json.loads(json.dumps(info.to_dict()))
    assert data["version"] == RUN_VERSION and data["notes"] == {"argv": ["meshstyle"]}
    assert "extra" not in data and data["history"][1] == dict(step(2))
    (tmp_path / "run.json").write_text(json.dumps(data))
    back = read_run_info(tmp_path / "run.json")
    assert back == info and back.history[0].total == 1.5
    # A run.json from before the version field (same keys) still reads.
    del data["version"]
    assert RunInfo.from_dict(data, "run.json").history == info.history


def test_step_record_reads_like_the_dict_it_replaced():
    record = step(4)
    assert record["total"] == record.total == 1.5 and dict(record)["step"] == 4
    assert set(record) == {"step", "total", "style", "content", "tv", "regularizer", "lr", "seconds"}
    assert math.isclose(steps_per_second([record, step(5)]), 4.0)
    with pytest.raises(KeyError):
        record["loss"]


@pytest.mark.parametrize("data, problem", [
    ({"version": RUN_VERSION + 1}, "version 2"),
    ({"version": RUN_VERSION, "history": [{"step": 1}]}, "history"),
    ({"cameras": {}}, "cameras"),
    ([1, 2], "JSON object"),
])
def test_run_info_refuses_other_versions_and_damaged_entries(data, problem):
    with pytest.raises(InputError, match=problem) as error:
        RunInfo.from_dict(data, "folder/run.json")
    assert "folder/run.json" in str(error.value)


def test_eval_of_a_run_folder_of_an_unknown_version_fails_in_one_line(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "stylized.glb").write_bytes(b"")
    (folder / "run.json").write_text(json.dumps({"version": 99}))
    done = run_cli("eval", str(folder))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "run.json" in line and "version 99" in line
