"""Built-in style images made in code, and loading a style from a name or an image file.

`circles` is StyleMesh's measuring style: equal red discs on white, whose size and stretch on the
stylized surfaces the evaluation measures. `strokes` is a painterly image for demos.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from meshstyle.errors import InputError
from meshstyle.common.io import read_image

MIN_STYLE_SIZE = 16
DEFAULT_STYLE_SIZE = 512

# ---------------------------------------------------------------------------------------------
# circles


CIRCLES_PER_SIDE = 6
CIRCLE_RED = np.array([1.0, 0.0, 0.0], dtype=np.float32)


def circles(size: int, rng: np.random.Generator) -> np.ndarray:
    """Equal red discs (radius size/20) on white, one per cell of a jittered 6 x 6 grid.

    Each disc stays inside its own cell with a gap, so discs never touch each other or the
    border and every disc's area is the same up to anti-aliasing.
    """
    radius = size / 20.0
    cell = size / CIRCLES_PER_SIDE
    slack = max(0.0, cell / 2 - radius - max(1.5, 0.15 * radius))
    rows, cols = np.meshgrid(np.arange(CIRCLES_PER_SIDE), np.arange(CIRCLES_PER_SIDE), indexing="ij")
    centres = (np.stack([rows.ravel(), cols.ravel()], axis=1) + 0.5) * cell
    centres += rng.uniform(-slack, slack, size=centres.shape)

    pixel_rows, pixel_cols = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5   # pixel centres
    coverage = np.zeros((size, size), dtype=np.float32)
    for centre_row, centre_col in centres:
        distance = np.hypot(pixel_rows - centre_row, pixel_cols - centre_col)
        # Linear ramp over one pixel across the rim: anti-aliased, and the covered area is pi r^2.
        coverage = np.maximum(coverage, np.clip(radius + 0.5 - distance, 0.0, 1.0))
    white = np.ones(3, dtype=np.float32)
    return (white + coverage[..., None] * (CIRCLE_RED - white)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# strokes

# Ordered from dark to light so that a stroke can pick "a neighbouring colour" of its region.
STROKE_PALETTE = np.array([
    [0.04, 0.10, 0.08],   # cypress black-green
    [0.07, 0.32, 0.27],   # viridian
    [0.05, 0.09, 0.30],   # deep navy
    [0.09, 0.20, 0.55],   # ultramarine
    [0.18, 0.38, 0.74],   # cobalt
    [0.42, 0.62, 0.86],   # sky blue
    [0.86, 0.90, 0.90],   # white
    [0.98, 0.88, 0.36],   # lemon yellow
    [0.93, 0.55, 0.08],   # chrome orange
], dtype=np.float32)


def strokes(size: int, rng: np.random.Generator) -> np.ndarray:
    """A Van Gogh-like night sky: strokes following a swirling flow, stars, dark hills.

    A stream function (smooth noise, a steady drift and a vortex around each star) gives a
    divergence-free flow; strokes are traced along it in three passes from broad to fine, each
    stroke one palette colour with bristle streaks, painted over an underpainting.
    """
    coords = (np.mgrid[0:size, 0:size].astype(np.float64) + 0.5) / size      # (2,H,W): row, col in [0,1]
    points = coords.reshape(2, -1).T
    star_centres = np.column_stack([rng.uniform(0.10, 0.55, 5), rng.uniform(0.08, 0.92, 5)])
    star_radii = rng.uniform(0.045, 0.08, 5)
    star_centres[0], star_radii[0] = [rng.uniform(0.12, 0.25), rng.uniform(0.65, 0.85)], 0.09   # a moon

    star_glow = np.zeros(len(points))
    stream = 0.6 * coords[0].ravel() + 0.05 * _smooth_noise_2d(points, rng, scale=0.35)
    for centre, radius in zip(star_centres, star_radii):
        squared = ((points - centre) ** 2).sum(axis=1) / radius ** 2
        star_glow = np.maximum(star_glow, np.exp(-0.5 * squared))
        stream += 0.35 * radius * np.exp(-0.25 * squared)      # vortex: flow circles the star
    hills_line = 0.74 + 0.06 * np.sin(6.0 * points[:, 1] + rng.uniform(0, 2 * np.pi)) \
        + 0.03 * _smooth_noise_2d(points[:, 1:], rng, scale=0.3)
    in_hills = points[:, 0] > hills_line

    # Palette coordinate: blues in the sky, white then yellow towards star cores, dark hills.
    tone = 3.6 + 0.9 * _smooth_noise_2d(points, rng, scale=0.25)
    tone = np.maximum(tone, 8.3 * star_glow ** 0.5)
    below_ridge = points[:, 0] - hills_line
    # Hills: black-green and viridian, with cobalt light catching the ridge.
    hills_tone = 0.8 + 0.6 * _smooth_noise_2d(points, rng, scale=0.2) + 3.2 * np.exp(-below_ridge / 0.025)
    tone = np.where(in_hills, hills_tone, tone)
    tone = tone.reshape(size, size)

    flow = _flow_from_stream(stream.reshape(size, size))
    flow = np.where(in_hills.reshape(size, size)[..., None], [0.15, 1.0], flow)   # hills: horizontal
    flow /= np.linalg.norm(flow, axis=-1, keepdims=True) + 1e-9

    canvas = _palette_color(tone) * 0.85   # underpainting
    for width_frac, length_frac, coverage, tone_spread in ((1 / 60, 1 / 14, 1.6, 0.45),
                                                           (1 / 90, 1 / 20, 1.6, 0.6),
                                                           (1 / 150, 1 / 30, 0.8, 0.8)):
        _paint_strokes(canvas, flow, tone, rng, width=max(2.0, size * width_frac),
                       length=max(4.0, size * length_frac), coverage=coverage, tone_spread=tone_spread)
    return np.clip(canvas, 0, 1).astype(np.float32)


def _palette_color(tone: np.ndarray) -> np.ndarray:
    """The palette colour nearest to a (fractional) palette coordinate: flat, strong colours."""
    return STROKE_PALETTE[np.clip(np.round(tone), 0, len(STROKE_PALETTE) - 1).astype(int)]


def _smooth_noise_2d(points: np.ndarray, rng: np.random.Generator, scale: float, waves: int = 24) -> np.ndarray:
    """Band-limited random field (mean 0, std about 1) over points (N,D), wavelengths near `scale`."""
    directions = rng.normal(size=(waves, points.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequencies = 2 * np.pi / scale * rng.uniform(0.6, 1.6, size=(waves, 1))
    phases = rng.uniform(0, 2 * np.pi, size=waves)
    return np.sqrt(2.0 / waves) * np.cos(points @ (directions * frequencies).T + phases).sum(axis=1)


def _flow_from_stream(stream: np.ndarray) -> np.ndarray:
    """Divergence-free flow (H,W,2) in (row, col) components: the 2-D curl of a stream function."""
    d_row, d_col = np.gradient(stream)
    return np.stack([-d_col, d_row], axis=-1)


def _paint_strokes(canvas: np.ndarray, flow: np.ndarray, tone: np.ndarray, rng: np.random.Generator,
                   width: float, length: float, coverage: float, tone_spread: float) -> None:
    """Paint one pass of strokes onto `canvas` in place; later strokes cover earlier ones."""
    size = canvas.shape[0]
    count = int(coverage * size * size / (width * length))
    step = width / 2
    steps = max(2, int(round(length / step)))

    # Trace every stroke at once along the flow (nearest-pixel lookups: strokes are short).
    position = rng.uniform(0, size, size=(count, 2))
    heading = np.where(rng.random(count) < 0.5, 1.0, -1.0)[:, None]
    path = [position]
    for _ in range(steps):
        index = np.clip(position.astype(int), 0, size - 1)
        position = position + heading * step * flow[index[:, 0], index[:, 1]]
        path.append(position)
    path = np.stack(path, axis=1)                                   # (count, steps+1, 2)
    direction = np.gradient(path, axis=1)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True) + 1e-9
    across_dir = np.stack([-direction[..., 1], direction[..., 0]], axis=-1)

    seed = np.clip(path[:, 0].astype(int), 0, size - 1)
    stroke_tone = tone[seed[:, 0], seed[:, 1]] + rng.normal(0, tone_spread, count)
    stroke_color = _palette_color(stroke_tone)
    stroke_color = stroke_color * rng.uniform(0.9, 1.08, size=(count, 1))
    bristles = rng.normal(0, 1, size=(count, 9))                     # streaks along each stroke

    half = width / 2
    offsets = np.stack(np.mgrid[-int(np.ceil(half)):int(np.ceil(half)) + 1,
                                -int(np.ceil(half)):int(np.ceil(half)) + 1], axis=-1).reshape(-1, 2)
    offsets = offsets[(offsets ** 2).sum(axis=1) <= half ** 2]
    pixel = (path[:, :, None, :] + offsets).astype(int)             # (count, steps+1, K, 2)
    across = (offsets[None, None] * across_dir[:, :, None, :]).sum(-1) / half   # in [-1, 1]
    bristle_bin = np.clip(((across + 1) / 2 * 9).astype(int), 0, 8)
    streak = 1 + 0.10 * bristles[np.arange(count)[:, None, None], bristle_bin]
    rim = 1 - 0.25 * np.clip(np.abs(across) * 3 - 2, 0, 1)          # darker edges: paint ridges
    shade = (streak * rim).reshape(count, -1)
    color = stroke_color[:, None, :] * shade[..., None]

    pixel = pixel.reshape(count, -1, 2)
    inside = np.all((pixel >= 0) & (pixel < size), axis=-1)
    flat_pixel = (pixel[..., 0] * size + pixel[..., 1])[inside]
    flat_color = color[inside]
    # Strokes are in painting order: for each pixel keep the last stamp that touches it.
    _, last_from_end = np.unique(flat_pixel[::-1], return_index=True)
    last = len(flat_pixel) - 1 - last_from_end
    canvas.reshape(-1, 3)[flat_pixel[last]] = flat_color[last]


# ---------------------------------------------------------------------------------------------
# registry and loading

StyleMaker = Callable[[int, np.random.Generator], np.ndarray]

STYLES: dict[str, tuple[StyleMaker, str]] = {
    "circles": (circles, "equal red discs (radius 1/20 of the side) on white, for measuring stroke size"),
    "strokes": (strokes, "painterly night sky: swirling brush strokes in blues, yellow and white"),
}


def style_names() -> list[str]:
    return list(STYLES)


def make_style(name: str, size: int = DEFAULT_STYLE_SIZE, seed: int = 0) -> np.ndarray:
    """The built-in style `name` as a (size, size, 3) float32 image in [0,1], deterministic per seed."""
    if name not in STYLES:
        raise InputError(name, f"unknown style; built-in styles: {', '.join(STYLES)}")
    if size < MIN_STYLE_SIZE:
        raise InputError(name, f"style size {size} px is too small (at least {MIN_STYLE_SIZE})")
    maker, _description = STYLES[name]
    return maker(int(size), np.random.default_rng(seed))


def load_style(spec: str | Path, size: int | None = None) -> np.ndarray:
    """A style image from a file or a built-in name, (H,W,3) float32 in [0,1].

    An existing file wins over a built-in name; `size` sets the long side (aspect kept).
    """
    if isinstance(spec, str) and spec in STYLES and not Path(spec).is_file():
        return make_style(spec, size or DEFAULT_STYLE_SIZE)
    path = Path(spec)
    if isinstance(spec, str) and not path.exists() and not path.suffix and len(path.parts) == 1:
        # A bare word: most likely a misspelt built-in name rather than a missing file.
        raise InputError(spec, f"not an image file nor a built-in style; built-in styles: {', '.join(STYLES)}")
    image = read_image(path)
    return image if size is None else resize_long_side(image, size, source=path)


def resize_long_side(image: np.ndarray, size: int, source: str | Path | None = None) -> np.ndarray:
    """Resize so that the long side is `size` px: box (area) filter when shrinking, bicubic when enlarging."""
    from PIL import Image

    if size < MIN_STYLE_SIZE:
        raise InputError(source, f"style size {size} px is too small (at least {MIN_STYLE_SIZE})")
    height, width = image.shape[:2]
    scale = size / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))   # PIL wants (w, h)
    if target == (width, height):
        return image.astype(np.float32)
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
                           .resize(target, resample=resample)) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0, 1).astype(np.float32)
