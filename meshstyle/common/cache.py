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
