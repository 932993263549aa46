"""NNFM and the palette step: chunking changes nothing, both move a 2-D image towards the style."""
from __future__ import annotations

import torch

from meshstyle.stylization.paint import (ColorTransform, color_moments, nearest_style, nnfm_loss, normalized_style_features,
                             palette_transform)
from meshstyle.inputs.styles import make_style
from meshstyle.stylization.vgg import load_vgg


def smooth_image(seed: int, size: int = 64, low: float = 0.35, high: float = 0.65) -> torch.Tensor:
    """A blurry colour image (3,size,size) with values in [low, high]."""
    noise = torch.rand(1, 3, size // 8, size // 8, generator=torch.Generator().manual_seed(seed))
    image = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[0]
    return low + (high - low) * image


def style_image(size: int = 96) -> torch.Tensor:
    return torch.from_numpy(make_style("strokes", size=size)).permute(2, 0, 1).float().contiguous()


def test_nnfm_chunked_equals_unchunked_value_and_gradient():
    generator = torch.Generator().manual_seed(0)
    style = normalized_style_features(torch.randn(1, 16, 9, 11, generator=generator))
    weight = torch.rand(2, 1, 24, 20, generator=generator)
    results = []
    for chunk in (10_000, 7, 64):
        features = torch.randn(2, 16, 12, 10, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        loss = nnfm_loss(features, style, weight, chunk=chunk)
        loss.backward()
        results.append((loss.detach(), features.grad.clone()))
    for loss, grad in results[1:]:
        assert torch.allclose(loss, results[0][0], atol=1e-6)
        assert torch.allclose(grad, results[0][1], atol=1e-7)


def test_nearest_style_finds_the_cosine_nearest_feature():
    generator = torch.Generator().manual_seed(2)
    style = torch.nn.functional.normalize(torch.randn(50, 8, generator=generator), dim=1)
    points = torch.nn.functional.normalize(torch.randn(30, 8, generator=generator), dim=1)
    expected = (points @ style.T).argmax(dim=1)
    assert torch.equal(nearest_style(points, style, chunk=4), expected)


def test_nnfm_of_the_style_itself_is_zero_and_ignores_uncovered_pixels():
    features = torch.randn(1, 8, 5, 5, generator=torch.Generator().manual_seed(3))
    assert float(nnfm_loss(features, normalized_style_features(features))) < 1e-5
    other = torch.randn(1, 8, 5, 5, generator=torch.Generator().manual_seed(4))
    mixed = features.clone()
    mixed[..., 3:] = other[..., 3:]
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., :3] = 1.0
    assert float(nnfm_loss(mixed, normalized_style_features(features), mask)) < 1e-5
    assert float(nnfm_loss(mixed, normalized_style_features(features))) > 0.05


def test_nnfm_moves_a_2d_image_towards_the_style_features():
    vgg = load_vgg()
    style = style_image()
    targets = normalized_style_features(vgg(style[None], ("relu3_1",))["relu3_1"])
    image = smooth_image(5).requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=0.03)
    losses = []
    for _ in range(25):
        loss = nnfm_loss(vgg(image[None], ("relu3_1",))["relu3_1"], targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    # The whole feature distribution comes closer too (eval's sliced Wasserstein distance).
    assert style_distance(image.detach(), style) < 0.9 * style_distance(smooth_image(5), style)


def style_distance(image: torch.Tensor, style: torch.Tensor) -> float:
    from meshstyle.evaluate.rendering import RenderedView
    from meshstyle.evaluate.style import style_metrics

    class Covered:
        mask = torch.ones(image.shape[1:], dtype=torch.bool)

    view = RenderedView(camera=None, fragments=Covered(), image=image.permute(1, 2, 0).numpy())
    return style_metrics([view], style.permute(1, 2, 0).numpy())["swd"]


def test_palette_step_matches_the_style_colour_mean_and_covariance():
    content = smooth_image(6, low=0.25, high=0.75)
    style = style_image()
    transform = palette_transform(content, style)
    style_mean, style_covariance = color_moments(style)
    content_mean, _ = color_moments(content)
    assert float((content_mean - style_mean).abs().max()) > 0.05   # it did have to move
    # The affine map itself matches both moments exactly ...
    mapped = torch.einsum("ij,jhw->ihw", transform.matrix, content) + transform.offset[:, None, None]
    mean, covariance = color_moments(mapped)
    assert torch.allclose(mean, style_mean, atol=1e-5)
    assert torch.allclose(covariance, style_covariance, atol=1e-5)
    # ... and the texture, clamped into [0,1], stays close (this blurry image is far from the
    # painting's skewed colour distribution, so ~10% of its values clamp).
    mean, covariance = color_moments(transform(content))
    assert torch.allclose(mean, style_mean, atol=0.03)
    assert torch.allclose(covariance, style_covariance, atol=0.02)


def test_palette_step_only_counts_masked_texels_and_strength_zero_is_identity():
    content = smooth_image(7)
    padded = torch.zeros(3, 64, 96)
    padded[:, :, :64] = content           # empty atlas space, black, must not count
    mask = torch.zeros(64, 96, dtype=torch.bool)
    mask[:, :64] = True
    style = style_image()
    masked = palette_transform(padded, style, mask)
    plain = palette_transform(content, style)
    assert torch.allclose(masked.matrix, plain.matrix, atol=1e-4)
    assert torch.allclose(masked.offset, plain.offset, atol=1e-4)
    identity = palette_transform(content, style, strength=0.0)
    assert torch.allclose(identity(content), ColorTransform.identity()(content))


def test_palette_step_keeps_a_flat_texture_flat():
    flat = torch.full((3, 32, 32), 0.5) + 1e-4 * torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(8))
    recoloured = palette_transform(flat, style_image())(flat)
    assert float(recoloured.std(dim=(1, 2)).max()) < 0.02
