"""File output that never leaves half-written files: write to a temporary name, then rename."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from meshstyle.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the suffix so that writers which pick a format from the extension
    (imageio, trimesh) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates files readable by the owner only; outputs get the usual umask permissions.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json_text(obj, indent=2) + "\n")


def json_text(obj: Any, **options: Any) -> str:
    """Strict JSON: NaN and infinities (a correlation over too few samples) become null."""
    return json.dumps(_finite(obj), default=_json_default, allow_nan=False, **options)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0,1] (H,W,C) -> uint8, rounding rather than truncating."""
    return np.clip(np.asarray(image, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an (H,W,3) image, float in [0,1] or uint8, as 8-bit sRGB PNG/JPEG."""
    import imageio.v3 as iio

    pixels = image if image.dtype == np.uint8 else to_uint8(image)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, pixels)


def read_image(path: str | Path) -> np.ndarray:
    """Read an 8-bit image as float32 RGB in [0,1], (H,W,3). Errors name the file."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        pixels = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for a corrupt file
        raise InputError(path, f"cannot read image ({type(exc).__name__})") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise InputError(path, f"unsupported image shape {pixels.shape}")
    pixels = pixels[..., :3]
    scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return (pixels.astype(np.float32) / scale).clip(0, 1)
