"""Built-in style images and style loading."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from meshstyle.errors import InputError
from meshstyle.common.io import write_bytes, write_image
from meshstyle.inputs.styles import STYLES, load_style, make_style, resize_long_side, style_names


@pytest.fixture(scope="module")
def circles_image() -> np.ndarray:
    return make_style("circles", size=300, seed=0)


@pytest.fixture(scope="module")
def strokes_image() -> np.ndarray:
    return make_style("strokes", size=256, seed=0)


def hue_histogram(image: np.ndarray, bins: int = 12) -> np.ndarray:
    """Share of saturated pixels in each hue bin (hue from the RGB hexagon)."""
    top, bottom = image.max(axis=-1), image.min(axis=-1)
    chroma = top - bottom
    saturated = chroma > 0.15
    r, g, b = (image[..., i][saturated] for i in range(3))
    c, m = chroma[saturated], top[saturated]
    hue = np.where(m == r, ((g - b) / c) % 6, np.where(m == g, (b - r) / c + 2, (r - g) / c + 4)) / 6
    return np.bincount((hue * bins).astype(int) % bins, minlength=bins) / image[..., 0].size


def test_style_names_match_registry():
    assert style_names() == list(STYLES)
    assert {"circles", "strokes"} <= set(style_names())
    for maker, description in STYLES.values():
        assert callable(maker) and description


def test_circles_are_equal_red_discs_on_white(circles_image):
    image = circles_image
    assert image.shape == (300, 300, 3) and image.dtype == np.float32
    red = (image[..., 0] > 0.99) & (image[..., 1] < 0.5) & (image[..., 2] < 0.5)
    labels, count = ndimage.label(red)
    assert 25 <= count <= 64
    areas = ndimage.sum_labels(red, labels, index=np.arange(1, count + 1))
    radii = np.sqrt(areas / np.pi)
    assert radii.max() / radii.min() < 1.04                  # one radius for all
    assert np.median(radii) == pytest.approx(300 / 20, rel=0.03)
    # Pure colours: disc interiors exactly red, background exactly white, only rims in between.
    interior = ndimage.binary_erosion(red, iterations=2)
    np.testing.assert_array_equal(image[interior], np.broadcast_to([1, 0, 0], image[interior].shape))
    background = ~ndimage.binary_dilation(red, iterations=2)
    assert np.all(image[background] == 1.0)
    assert not red[0].any() and not red[-1].any() and not red[:, 0].any() and not red[:, -1].any()


def test_circles_have_antialiased_rims(circles_image):
    green = circles_image[..., 1]
    rim = (green > 0.02) & (green < 0.98)
    assert rim.sum() > 36 * 2 * np.pi * 15 * 0.5            # about one partial pixel along each rim
    np.testing.assert_allclose(circles_image[..., 1], circles_image[..., 2])   # only red/white mixes


def test_circles_are_spread_evenly(circles_image):
    red = circles_image[..., 1] < 0.5
    labels, count = ndimage.label(red)
    centres = np.array(ndimage.center_of_mass(red, labels, np.arange(1, count + 1)))
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(count) * 1e9
    nearest = gaps.min(axis=1)
    assert nearest.min() > 2 * 15 + 1                        # never touching
    assert nearest.max() < 4 * 2 * 15                        # no big empty holes


def test_strokes_is_colourful_and_textured(strokes_image):
    image = strokes_image
    assert image.shape == (256, 256, 3) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    assert image.std() > 0.1
    hues = hue_histogram(image)
    assert (hues > 0.02).sum() >= 3                          # blues, yellows, oranges
    blue, yellow = hues[7:9].sum(), hues[1:3].sum()          # hue bins 210-270 deg and 30-90 deg
    assert blue > 0.3 and yellow > 0.01
    # Brush texture: neighbouring pixels differ much more than in a smooth gradient.
    assert np.abs(np.diff(image, axis=1)).mean() > 0.03


@pytest.mark.parametrize("name", ["circles", "strokes"])
def test_styles_are_deterministic_per_seed(name):
    first, again, other = (make_style(name, size=128, seed=seed) for seed in (5, 5, 6))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 0.01


def test_make_style_rejects_unknown_names_and_tiny_sizes():
    with pytest.raises(InputError) as error:
        make_style("starry-night")
    assert error.value.path == "starry-night" and "circles" in error.value.problem
    with pytest.raises(InputError, match="too small"):
        make_style("circles", size=4)


def test_load_style_by_name_matches_make_style():
    np.testing.assert_array_equal(load_style("circles", size=96), make_style("circles", size=96))
    assert load_style("circles").shape == (512, 512, 3)


def test_load_style_file_keeps_aspect_and_colours(tmp_path):
    rows = np.linspace(0, 1, 200, dtype=np.float32)[:, None, None]
    image = np.concatenate([np.broadcast_to(rows, (200, 300, 1)),
                            np.full((200, 300, 1), 0.25, np.float32),
                            np.full((200, 300, 1), 0.75, np.float32)], axis=2)
    path = tmp_path / "gradient.png"
    write_image(path, image)

    full = load_style(path)
    assert full.shape == (200, 300, 3)
    np.testing.assert_allclose(full, image, atol=1 / 255)
    small = load_style(str(path), size=150)
    assert small.shape == (100, 150, 3) and small.dtype == np.float32
    # Box filtering averages: channel means survive, the gradient stays monotone.
    np.testing.assert_allclose(small.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=2e-3)
    assert np.all(np.diff(small[:, 75, 0]) >= -1e-3)
    assert load_style(path, size=600).shape == (400, 600, 3)


def test_resize_long_side_shrinks_portrait_images():
    portrait = np.random.default_rng(0).random((120, 40, 3)).astype(np.float32)
    assert resize_long_side(portrait, 60).shape == (60, 20, 3)


def test_load_style_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(InputError) as error:
        load_style(missing)
    assert error.value.path == str(missing) and "no such file" in error.value.problem

    corrupt = tmp_path / "corrupt.png"
    write_bytes(corrupt, b"this is not a png")
    with pytest.raises(InputError) as error:
        load_style(str(corrupt))
    assert error.value.path == str(corrupt) and "not an image" in error.value.problem

    with pytest.raises(InputError) as error:
        load_style("cirles")
    assert error.value.path == "cirles"
    assert "circles" in error.value.problem and "strokes" in error.value.problem
