"""On-disk cache for work that depends only on its inputs (UV atlases, view fragments).

Entries are keyed by content fingerprints, so a changed mesh, atlas or camera misses the cache
instead of returning stale data.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir(kind: str, override: str | Path | None = None) -> Path:
    """`$MESHSTYLE_CACHE/<kind>` (default ~/.cache/meshstyle/<kind>), created on demand."""
    root = Path(override) if override else Path(os.environ.get("MESHSTYLE_CACHE", Path.home() / ".cache" / "meshstyle"))
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    root = str(Path(override) if override else Path(os.environ.get("MESHSTYLE_CACHE", Path.home() / ".cache" / "meshstyle")))
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

    root = str(root) if root is not None else str(Path(os.environ.get("MESHSTYLE_CACHE", Path.home() / ".cache" / "meshstyle")))
    if root in _unusable:
        return
    _unusable[root] = exc.strerror or type(exc).__name__
    warn(f"cache {root} is not usable ({_unusable[root]}); continuing without a cache")


def cache_usable(override: str | Path | None = None) -> bool:
    root = str(Path(override) if override else Path(os.environ.get("MESHSTYLE_CACHE", Path.home() / ".cache" / "meshstyle")))
    return root not in _unusable
