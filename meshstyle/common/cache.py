"""On-disk cache for work that depends only on its inputs (UV atlases, view fragments, render hits).

Entries are keyed by content fingerprints, so a changed mesh, atlas or camera misses the cache
instead of returning stale data.

Where: `$MESHSTYLE_CACHE`, else `$XDG_CACHE_HOME/meshstyle`, else `~/.cache/meshstyle`, one
folder per kind. Each kind has a size budget (`MESHSTYLE_<KIND>_CACHE_MB`, defaults below); after
writing, the least recently used entries beyond it are deleted (a read counts as a use).
`meshstyle cache info|clear` shows and empties them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np


# Megabytes per kind: an atlas of a 200k-face scan is ~7 MB, a 24-view fragment pyramid ~100 MB,
# a 640x480 render view 1.2 MB.
DEFAULT_BUDGET_MB = {"atlas": 512.0, "fragments": 4096.0, "render": 2048.0}
KINDS = tuple(DEFAULT_BUDGET_MB)


def cache_root() -> Path:
    """MESHSTYLE_CACHE, else XDG_CACHE_HOME/meshstyle, else ~/.cache/meshstyle."""
    if os.environ.get("MESHSTYLE_CACHE"):
        return Path(os.environ["MESHSTYLE_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "meshstyle"
    return Path.home() / ".cache" / "meshstyle"


def cache_dir(kind: str, override: str | Path | None = None) -> Path:
    """`<cache root>/<kind>` (or `override/<kind>`), created on demand."""
    root = Path(override) if override else cache_root()
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def budget_mb(kind: str) -> float:
    """The size budget of one cache kind: MESHSTYLE_<KIND>_CACHE_MB, else the default."""
    value = os.environ.get(f"MESHSTYLE_{kind.upper()}_CACHE_MB")
    try:
        return float(value) if value else DEFAULT_BUDGET_MB.get(kind, 1024.0)
    except ValueError:
        return DEFAULT_BUDGET_MB.get(kind, 1024.0)


def touch(path: Path) -> None:
    """Mark an entry as just used, so that pruning keeps it over older ones."""
    try:
        os.utime(path)
    except OSError:  # read-only cache or pruned meanwhile: nothing to keep track of
        pass


def _entries(folder: Path) -> list[tuple[float, int, Path]]:
    entries = []
    for path in folder.iterdir() if folder.is_dir() else ():
        if path.name.startswith(".") or not path.is_file():   # temporaries of writers in flight
            continue
        try:
            info = path.stat()
        except FileNotFoundError:  # pruned by a concurrent process
            continue
        entries.append((info.st_mtime, info.st_size, path))
    return entries


def prune(folder: Path, budget: float) -> int:
    """Delete the least recently used entries of `folder` until it holds at most `budget` MB;
    returns how many were deleted."""
    entries = _entries(folder)
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):
        if total <= budget * 2**20:
            break
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:   # read-only cache: leave it as it is
            break
        total -= size
        removed += 1
    return removed


def prune_kind(kind: str, override: str | Path | None = None) -> int:
    return prune(cache_dir(kind, override), budget_mb(kind))


def cache_info() -> dict[str, dict]:
    """Per kind: folder, entries, megabytes used, budget."""
    info = {}
    for kind in KINDS:
        folder = cache_root() / kind
        entries = _entries(folder)
        info[kind] = {"folder": str(folder), "entries": len(entries),
                      "mb": round(sum(size for _, size, _ in entries) / 2**20, 2), "budget_mb": budget_mb(kind)}
    return info


def clear_cache(kinds: tuple[str, ...] = KINDS) -> int:
    """Delete every entry of the given kinds; returns how many files went."""
    removed = 0
    for kind in kinds:
        for _, _, path in _entries(cache_root() / kind):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def fingerprint(*parts: Any) -> str:
    """Stable hex digest of arrays, strings, numbers and nested lists/tuples/dicts of them."""
    digest = hashlib.sha256()
    _update(digest, parts)
    return digest.hexdigest()[:24]


def _update(digest: "hashlib._Hash", part: Any) -> None:
    if isinstance(part, np.ndarray):
        array = np.ascontiguousarray(part)
        digest.update(f"nd{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    elif isinstance(part, (list, tuple)):
        digest.update(f"seq{len(part)}".encode())
        for item in part:
            _update(digest, item)
    elif isinstance(part, dict):
        digest.update(f"map{len(part)}".encode())
        for key in sorted(part):
            _update(digest, key)
            _update(digest, part[key])
    else:
        digest.update(f"{type(part).__name__}:{part!r}".encode())


# --- a cache that cannot be written is no reason to fail a run ----------------------------------

_unusable: dict[str, str] = {}     # cache root -> why it is unusable (one warning per root)


def usable_cache_dir(kind: str, override: str | Path | None = None) -> Path | None:
    """`cache_dir(kind)` when it can be created and written, else None (the run goes on without a
    cache: a read-only or full cache costs time, never the run), warning once."""
    root = str(Path(override) if override else cache_root())
    if root in _unusable:
        return None
    try:
        path = cache_dir(kind, override)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        cache_failed(exc, root)
        return None
    return path


def cache_failed(exc: OSError, root: str | Path | None = None) -> None:
    """A cache read or write failed for a reason that will repeat (read-only, full, a file in the
    way): stop using that cache root for this process, with one warning."""
    from meshstyle.common.progress import warn

    root = str(root) if root is not None else str(cache_root())
    if root in _unusable:
        return
    _unusable[root] = exc.strerror or type(exc).__name__
    warn(f"cache {root} is not usable ({_unusable[root]}); continuing without a cache")


def cache_usable(override: str | Path | None = None) -> bool:
    root = str(Path(override) if override else cache_root())
    return root not in _unusable
