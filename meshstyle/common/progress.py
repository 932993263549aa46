"""Progress bars for every long stage (rate and ETA), quiet when asked."""
from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def quiet() -> bool:
    return os.environ.get("MESHSTYLE_QUIET", "") not in ("", "0")


def progress(iterable: Iterable[T] | None = None, *, desc: str, total: int | None = None, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr; `MESHSTYLE_QUIET=1` silences it (tests, notebooks)."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, file=sys.stderr, disable=quiet(),
                dynamic_ncols=True, leave=True)


def log(message: str) -> None:
    if not quiet():
        print(f"meshstyle: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """Warnings are always shown, even when quiet."""
    print(f"meshstyle: warning: {message}", file=sys.stderr, flush=True)
