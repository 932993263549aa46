"""Errors that the CLI turns into exit codes (docs/DESIGN.md: 2 bad input, 1 internal, 130 interrupted)."""
from __future__ import annotations

from pathlib import Path


class MeshstyleError(Exception):
    """Base class of errors the user can act on."""


class InputError(MeshstyleError):
    """Bad user input: the CLI prints `meshstyle: <path>: <problem>` on one line and exits 2."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class RankLost(MeshstyleError):
    """Under torchrun: another process of the job died or stopped answering, so this one stops too
    (the CLI exits 1 saying whether a checkpoint was left to resume from)."""
