"""run.json: what a run was made from and how it went, as one versioned dataclass.

The JSON keys are the field names; `version` says which layout a file has. Readers accept this
version (and files from before the field existed, which have the same keys) and refuse any other
with an InputError naming the file. Keys a version does not name are kept in `extra` and written
back, so rewriting a run.json (eval adds metrics) loses nothing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshstyle.errors import InputError

if TYPE_CHECKING:   # imported where used: the CLI reads run.json before torch loads
    from meshstyle.stylization.optimize import StepRecord

RUN_VERSION = 1


@dataclass
class RunInfo:
    meshstyle: str = ""                                            # package version that wrote it
    config: dict[str, Any] = field(default_factory=dict)          # StylizeConfig.to_dict()
    seed: int = 0
    versions: dict[str, str] = field(default_factory=dict)        # python and library versions
    inputs: dict[str, Any] = field(default_factory=dict)          # sources and fingerprints
    scene: dict[str, Any] = field(default_factory=dict)           # name, kind, up, camera_source
    timings: dict[str, float] = field(default_factory=dict)       # seconds per stage
    history: list[StepRecord] = field(default_factory=list)       # the loss per step
    info: dict[str, Any] = field(default_factory=dict)            # atlas figures, coverage, ...
    metrics: dict[str, Any] = field(default_factory=dict)         # filled by `meshstyle eval`
    cameras: list[dict[str, Any]] = field(default_factory=list)   # Camera.to_dict() of each view
    holdout: list[dict[str, Any]] = field(default_factory=list)
    # geometry/frames.py and outputs/provenance.py: where the run came from and how its frames relate
    provenance: dict[str, Any] = field(default_factory=dict)      # command line, version, UTC timestamp
    frame: dict[str, Any] = field(default_factory=dict)           # input_to_output 4x4, up, units, obj frame
    cameras_input: list[dict[str, Any]] = field(default_factory=list)   # `cameras` in the input's frame
    holdout_input: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)                # what the run wrote (--overwrite clears them)
    extra: dict[str, Any] = field(default_factory=dict)           # keys this version does not name
    version: int = RUN_VERSION

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.version}
        for item in fields(self):
            if item.name not in ("version", "extra"):
                data[item.name] = getattr(self, item.name)
        data["history"] = [dict(record) for record in self.history]
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Any, path: str | Path) -> "RunInfo":
        """The run info in `data` (run.json at `path`); InputError naming the file when it is not one."""
        if not isinstance(data, dict):
            raise InputError(path, "expected a JSON object")
        version = data.get("version", RUN_VERSION)   # files from before the field: same keys
        if version != RUN_VERSION:
            raise InputError(path, f"run.json version {version!r} is not one this meshstyle reads "
                                   f"(it reads version {RUN_VERSION}); written by another meshstyle version?")
        named = {item.name for item in fields(cls)} - {"extra"}
        expected = {"config": dict, "versions": dict, "inputs": dict, "scene": dict, "timings": dict,
                    "info": dict, "metrics": dict, "cameras": list, "holdout": list, "history": list}
        for key, kind in expected.items():
            if key in data and not isinstance(data[key], kind):
                raise InputError(path, f"'{key}' must be a JSON {'object' if kind is dict else 'list'}")
        values = {key: value for key, value in data.items() if key in named}
        from meshstyle.stylization.optimize import StepRecord

        try:
            values["history"] = [StepRecord.from_dict(record) for record in data.get("history", [])]
        except (KeyError, TypeError, ValueError):
            raise InputError(path, "'history' holds an entry that is not a step record") from None
        return cls(**values, extra={key: value for key, value in data.items() if key not in named})


def read_run_info(path: Path) -> RunInfo:
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"invalid JSON: {exc}") from None
    return RunInfo.from_dict(data, path)
