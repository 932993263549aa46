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


# Transparent pixels are composited over white, like a painting on paper (README "Inputs").
IMAGE_BACKGROUND = (1.0, 1.0, 1.0)
MAX_IMAGE_PIXELS = 20_000 * 20_000   # beyond this a file is a decompression bomb, not a photo


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as float32 sRGB in [0,1], (H,W,3). Errors name the file.

    Colour spaces are converted rather than reinterpreted: CMYK (Adobe's inverted JPEGs included),
    palette, grey, 16-bit and 32-bit integer and float modes; alpha is composited over
    `IMAGE_BACKGROUND`. Only the first frame of an animation or multi-page file is read.
    """
    from meshstyle.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "is not a file")
    try:
        pixels = _read_with_pillow(path)
    except InputError:
        raise
    except MemoryError:
        raise InputError(path, "image too large to read") from None
    except Exception as exc:  # Pillow raises many types for foreign and corrupt files
        if type(exc).__name__ == "UnidentifiedImageError":
            raise InputError(path, "not an image in a known format (PNG, JPEG, BMP, GIF, TIFF, WebP), "
                                   "or its header is damaged") from None
        raise InputError(path, f"cannot read image: {_first_line(exc)}") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise InputError(path, f"unsupported image shape {pixels.shape}")
    if not np.isfinite(pixels).all():
        raise InputError(path, "image holds non-finite values")
    return np.ascontiguousarray(pixels.clip(0, 1), dtype=np.float32)


def _read_with_pillow(path: Path) -> np.ndarray:
    import warnings

    from PIL import Image

    from meshstyle.errors import InputError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(path, "image dimensions are implausibly large (decompression bomb?)") from None
    with image:
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise InputError(path, f"image of {image.width}x{image.height} pixels is too large")
        try:
            image.seek(0)
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(path, f"cannot read image: {_first_line(exc)} (truncated or corrupt?)") from None
        return _pillow_to_rgb(image)


def _pillow_to_rgb(image: "Image.Image") -> np.ndarray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
        image = image.convert("RGBA" if mode in ("RGBa", "La") else "RGB")
    mode = image.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        # 16-bit grey (PNG) arrives as I;16* or as 32-bit I holding 0..65535.
        pixels = np.asarray(image, dtype=np.float64)
        pixels = (pixels / (65535.0 if pixels.max(initial=0) > 255 or mode.startswith("I;16") else 255.0))
        pixels = pixels.astype(np.float32)
    elif mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
    else:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return _compose_rgb(pixels)


def _compose_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H,W), (H,W,1..4) -> (H,W,3): grey repeated, alpha composited over `IMAGE_BACKGROUND`."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3:
        return pixels
    channels = pixels.shape[2]
    alpha = None
    if channels in (2, 4):
        alpha = pixels[..., -1:].clip(0, 1)
        pixels = pixels[..., :-1]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif pixels.shape[2] > 3:
        pixels = pixels[..., :3]
    if alpha is not None:
        background = np.asarray(IMAGE_BACKGROUND, dtype=np.float32)
        pixels = pixels * alpha + background * (1.0 - alpha)
    return pixels


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
