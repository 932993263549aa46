"""Style/content losses: masking, scale-freeness, targets from the real VGG, colour preservation."""
from __future__ import annotations

import pytest
import torch

from meshstyle.stylization.losses import (StyleTargets, content_loss, gram, layout_loss, match_colors,
                              mean_std, style_layer_losses, style_loss, style_targets, tv_loss, weight_at)
from meshstyle.stylization.vgg import load_vgg

LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


def random_features(seed: int, shape=(1, 8, 6, 6)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def half_mask(shape=(1, 1, 6, 6)) -> torch.Tensor:
    mask = torch.zeros(shape)
    mask[..., :, :4] = 1.0   # left two thirds covered
    mask[..., 0, 4] = 0.5    # one partially covered pixel
    return mask


def targets_from(features: torch.Tensor, statistic: str) -> StyleTargets:
    if statistic == "gram":
        return StyleTargets("gram", (1.0,), gram={"relu1_1": gram(features)[0]})
    if statistic == "swd":
        return StyleTargets("swd", (1.0,), points={"relu1_1": features[0].flatten(1).T})
    mean, std = mean_std(features)
    return StyleTargets("adain", (1.0,), mean={"relu1_1": mean[0]}, std={"relu1_1": std[0]})


def smooth_image(seed: int, size: int = 32, low: float = 0.3, high: float = 0.7) -> torch.Tensor:
    """A blurry colour image (3,size,size) with values in [low, high], so no colour op clamps."""
    noise = torch.rand(1, 3, size // 8, size // 8, generator=torch.Generator().manual_seed(seed))
    image = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[0]
    return low + (high - low) * image


@pytest.mark.parametrize("statistic", ["gram", "adain", "swd"])
def test_masked_style_loss_ignores_uncovered_feature_pixels(statistic):
    mask = half_mask()
    targets = targets_from(random_features(1), statistic)
    results = []
    for masked_out_values in (random_features(2), 100 * random_features(3)):
        features = torch.where(mask > 0, random_features(4), masked_out_values).requires_grad_(True)
        loss = style_loss({"relu1_1": features}, mask, targets, {"relu1_1": 1.0}, projection_key=7)
        loss.backward()
        results.append((loss.detach(), features.grad.clone()))
        assert loss > 0
    (loss_a, grad_a), (loss_b, grad_b) = results
    assert torch.allclose(loss_a, loss_b, rtol=1e-6)
    assert torch.allclose(grad_a, grad_b, rtol=1e-5, atol=1e-9)
    assert (grad_a[..., mask[0, 0] == 0] == 0).all() and (grad_a[..., mask[0, 0] == 1] != 0).any()


def test_content_loss_ignores_uncovered_pixels_and_is_scale_free():
    mask = half_mask()
    target = random_features(5)
    features = random_features(6)
    loss = content_loss({"relu4_2": features}, {"relu4_2": target}, mask, "relu4_2")
    changed = torch.where(mask > 0, features, -50.0)
    changed_target = torch.where(mask > 0, target, 7.0)
    assert torch.allclose(content_loss({"relu4_2": changed}, {"relu4_2": changed_target}, mask, "relu4_2"), loss)
    scaled = content_loss({"relu4_2": 30 * features}, {"relu4_2": 30 * target}, mask, "relu4_2")
    assert torch.allclose(scaled, loss, rtol=1e-5)
    assert content_loss({"relu4_2": target}, {"relu4_2": target}, mask, "relu4_2") == 0


def test_weighted_gram_is_the_plain_gram_of_the_covered_pixels():
    features = random_features(7, (2, 5, 4, 6))
    mask = (random_features(8, (2, 1, 4, 6)) > 0.4).float()
    weighted = gram(features, mask)
    for view in range(2):
        covered = features[view].reshape(5, -1)[:, mask[view].reshape(-1) > 0]
        assert torch.allclose(weighted[view], covered @ covered.T / covered.shape[1], rtol=1e-5)
    # normalised by the total weight: scaling all weights changes nothing
    assert torch.allclose(gram(features, 3 * mask), weighted, rtol=1e-5)
    assert torch.allclose(gram(features, torch.ones_like(mask)), gram(features), rtol=1e-5)
    mean, std = mean_std(features, mask)
    covered = features[0].reshape(5, -1)[:, mask[0].reshape(-1) > 0]
    assert torch.allclose(mean[0], covered.mean(1), rtol=1e-5)
    assert torch.allclose(std[0], covered.std(1, unbiased=False), rtol=1e-4)


def test_sliced_wasserstein_matches_the_whole_distribution_not_only_its_moments():
    # A bimodal style (two clusters) and start features with the same mean and covariance but one
    # Gaussian blob: the Gram loss sees them as equal, the sliced Wasserstein loss does not, and
    # optimising it splits the features into the style's two clusters.
    generator = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (4000, 1), generator=generator) * 2.0 - 1.0
    style_points = 3.0 + signs * torch.tensor([[2.0, 0.0]]) + 0.1 * torch.randn(4000, 2, generator=generator)
    centred = torch.randn(4000, 2, generator=generator)
    centred = (centred - centred.mean(0)) / centred.std(0)
    blob = style_points.mean(0) + centred * style_points.std(0)
    features = blob.T.reshape(1, 2, 40, 100).clone().requires_grad_(True)
    targets = StyleTargets("swd", (1.0,), points={"relu1_1": style_points})
    gram_targets = StyleTargets("gram", (1.0,), gram={"relu1_1": style_points.T @ style_points / len(style_points)})
    assert float(style_loss({"relu1_1": features.detach()}, None, gram_targets, {"relu1_1": 1.0})) < 1e-3
    start = float(style_loss({"relu1_1": features.detach()}, None, targets, {"relu1_1": 1.0}, projection_key=1))
    assert start > 0.05
    optimizer = torch.optim.Adam([features], lr=0.05)
    for step in range(200):
        loss = style_loss({"relu1_1": features}, None, targets, {"relu1_1": 1.0}, projection_key=step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.05 * start
    first = features.detach()[0, 0].flatten()
    # two clusters at 1 and 5 along the first axis, as in the style, and nearly nothing in between
    assert float(((first - 3.0).abs() < 1.0).float().mean()) < 0.1
    assert abs(float((first > 3.0).float().mean()) - 0.5) < 0.1


def test_sliced_wasserstein_slices_are_reproducible_by_key():
    features, style_features = random_features(21, (1, 16, 6, 6)), random_features(22, (1, 16, 6, 6))
    targets = targets_from(style_features, "swd")
    first = style_loss({"relu1_1": features}, None, targets, {"relu1_1": 1.0}, projection_key=5)
    again = style_loss({"relu1_1": features}, None, targets, {"relu1_1": 1.0}, projection_key=5)
    other = style_loss({"relu1_1": features}, None, targets, {"relu1_1": 1.0}, projection_key=6)
    assert float(first) == float(again) and float(first) != float(other)
    assert float(style_loss({"relu1_1": style_features}, None, targets, {"relu1_1": 1.0}, projection_key=5)) < 1e-6


def test_weight_at_averages_areas():
    weight_map = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 1], [0, 0, 1, 1]])[None, None]
    assert torch.equal(weight_at(weight_map, (2, 2))[0, 0], torch.tensor([[1.0, 0.25], [0.0, 1.0]]))
    assert weight_at(weight_map, (4, 4)) is weight_map


def test_uncovered_view_contributes_nothing():
    features = random_features(9, (2, 8, 6, 6)).requires_grad_(True)
    weight_map = torch.zeros(2, 1, 6, 6)
    weight_map[1] = 1.0
    targets = targets_from(random_features(10), "gram")
    both = style_layer_losses({"relu1_1": features}, weight_map, targets)["relu1_1"]
    only_second = style_layer_losses({"relu1_1": features[1:]}, weight_map[1:], targets)["relu1_1"]
    assert torch.allclose(both, only_second / 2)   # averaged over 2 views, the empty one adding 0
    both.backward()
    assert torch.isfinite(features.grad).all() and (features.grad[0] == 0).all()


@pytest.mark.parametrize("statistic", ["gram", "adain", "swd"])
def test_style_losses_are_scale_free(statistic):
    features, style_features = random_features(11), random_features(12)
    loss = style_loss({"relu1_1": features}, None, targets_from(style_features, statistic), {"relu1_1": 1.0},
                      projection_key=3)
    for scale in (1e-2, 250.0):
        scaled_targets = targets_from(scale * style_features, statistic)
        scaled = style_loss({"relu1_1": scale * features}, None, scaled_targets, {"relu1_1": 1.0}, projection_key=3)
        assert torch.allclose(scaled, loss, rtol=1e-4)


@pytest.fixture(scope="module")
def vgg():
    return load_vgg()


def test_style_loss_is_zero_for_the_style_image_itself(vgg):
    style = smooth_image(13, 48, 0.0, 1.0)
    targets = style_targets(vgg, style, LAYERS, scales=(1.0,))
    weights = dict.fromkeys(LAYERS, 1.0)
    same = style_loss(vgg(style[None], LAYERS), None, targets, weights)
    other = style_layer_losses(vgg(smooth_image(14, 48, 0.0, 1.0)[None], LAYERS), None, targets)
    assert float(same) < 1e-10
    # scale-free: every layer of an unrelated image is off by the same order of magnitude
    assert all(0.01 < float(value) < 10 for value in other.values()), other
    assert float(style_loss(vgg(smooth_image(14, 48, 0.0, 1.0)[None], LAYERS), None, targets, weights)) > 0.05


def half_size(style: torch.Tensor) -> torch.Tensor:
    size = (style.shape[-2] // 2, style.shape[-1] // 2)
    return torch.nn.functional.interpolate(style[None], size=size, mode="bilinear", antialias=True,
                                           align_corners=False)[0].clamp(0, 1)


def test_multi_scale_targets_pool_the_scales(vgg):
    style = smooth_image(15, 48, 0.0, 1.0)
    full, half = vgg(style[None], ["relu2_1"])["relu2_1"], vgg(half_size(style)[None], ["relu2_1"])["relu2_1"]

    grams = style_targets(vgg, style, ["relu2_1"], scales=(1.0, 0.5))
    assert torch.allclose(grams.gram["relu2_1"], (gram(full) + gram(half))[0] / 2, rtol=1e-5)

    # AdaIN: moments pooled with each scale weighing equally (not each pixel)
    adain = style_targets(vgg, style, ["relu2_1"], scales=(1.0, 0.5), statistic="adain")
    (full_mean, full_std), (half_mean, half_std) = mean_std(full), mean_std(half)
    pooled_mean = (full_mean + half_mean)[0] / 2
    pooled_square = (full_std ** 2 + full_mean ** 2 + half_std ** 2 + half_mean ** 2)[0] / 2
    assert torch.allclose(adain.mean["relu2_1"], pooled_mean, rtol=1e-4)
    assert torch.allclose(adain.std["relu2_1"], (pooled_square - pooled_mean ** 2).sqrt(), rtol=1e-3, atol=1e-3)


def test_tv_loss():
    assert tv_loss(torch.full((3, 8, 8), 0.4)) == 0
    stripes = torch.zeros(1, 3, 8, 8)
    stripes[..., ::2] = 1.0   # every horizontal neighbour differs by 1, vertical ones by 0
    assert float(tv_loss(stripes)) == pytest.approx(1.0)
    assert float(tv_loss(stripes.transpose(-1, -2)[0])) == pytest.approx(1.0)


def test_layout_loss_sees_large_colour_regions_not_strokes():
    target = smooth_image(21, 64)
    assert float(layout_loss(target, target, None, 8)) == 0
    # a colour error of 0.1 in every channel is a loss of 1, whatever the blur
    for blur in (2, 8):
        assert float(layout_loss(target + 0.1, target, None, blur)) == pytest.approx(1.0, rel=1e-4)
    # strokes finer than the blur (a zero-mean checker of 0.4 contrast) leave the layout as it was...
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 0.4 - 0.2
    assert float(layout_loss(target + checker, target, None, 8)) < 1e-3
    # ...while the same colours moved by a whole region do not
    shifted = torch.roll(target, 24, dims=-1)
    assert float(layout_loss(shifted, target, None, 8)) > 0.2


def test_layout_loss_ignores_uncovered_pixels_and_pulls_regions_to_the_target():
    target = smooth_image(22, 64)
    weight = torch.zeros(1, 1, 64, 64)
    weight[..., :, :32] = 1.0
    image = torch.where(weight[0] > 0, target, torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3)))
    assert float(layout_loss(image, target, weight, 8)) == pytest.approx(0.0, abs=1e-9)
    # a red region painted blue is pulled back towards red, and only where pixels count
    red_target = target.clone()
    red_target[:, 16:48, 8:24] = torch.tensor([0.8, 0.1, 0.1])[:, None, None]
    painted = red_target.clone()
    painted[:, 16:48, 8:24] = torch.tensor([0.1, 0.1, 0.8])[:, None, None]
    painted.requires_grad_(True)
    loss = layout_loss(painted, red_target, weight, 8)
    loss.backward()
    assert float(loss.detach()) > 1.0
    inside = painted.grad[:, 16:48, 8:24].mean((1, 2))
    assert inside[0] < 0 < inside[2]   # descending raises red and lowers blue
    assert (painted.grad[..., 32:] == 0).all()


def test_match_colors_gives_the_style_the_content_colour_statistics():
    style = smooth_image(16, 64, 0.0, 1.0)
    content = torch.stack([0.6 + 0.08 * c for c in smooth_image(17, 64, -1.0, 1.0)])  # warm, low contrast
    content[2] -= 0.25
    matched = match_colors(style, content)
    assert matched.shape == style.shape and matched.min() >= 0 and matched.max() <= 1
    assert torch.allclose(matched.mean((1, 2)), content.mean((1, 2)), atol=2e-3)
    covariance = lambda image: torch.cov(image.reshape(3, -1), correction=0)  # noqa: E731
    assert torch.allclose(covariance(matched), covariance(content), atol=2e-4)
    assert not torch.allclose(covariance(style), covariance(content), atol=2e-4)
    # the structure is the style's: matched colours are an affine function of the style's
    flat_style, flat_matched = style.reshape(3, -1), matched.reshape(3, -1)
    affine = torch.cat([flat_style, torch.ones(1, flat_style.shape[1])])
    solution = torch.linalg.lstsq(affine.T, flat_matched.T).solution
    assert torch.allclose(affine.T @ solution, flat_matched.T, atol=1e-4)


def test_layout_term_keeps_a_red_region_red_under_a_blue_style(vgg):
    """The whole loss (`image_loss`, as 3-D patches and the 2-D ceiling use it) on a 2-D image: a
    blue style turns a red square grey-blue with Gram + content alone; with the colour-layout
    term the square stays red, and the style loss falls as far (strokes are still painted)."""
    from meshstyle.config import LossConfig
    from meshstyle.stylization.optimize import Objective, image_loss

    blue = smooth_image(30, 96)
    style = torch.stack([0.15 * blue[0], 0.25 + 0.2 * blue[1], 0.5 + 0.5 * blue[2]])
    content = torch.full((3, 64, 64), 0.6)
    content[:, 16:48, 16:48] = torch.tensor([0.85, 0.15, 0.1])[:, None, None]
    redness, style_drop = {}, {}
    for layout_weight in (0.0, 3.0):
        loss_config = LossConfig(layout_weight=layout_weight, style_scales=(1.0,))
        objective = Objective(vgg=vgg, style=style_targets(vgg, style, loss_config.style_layers), loss=loss_config)
        with torch.no_grad():
            content_features = vgg(content[None], (loss_config.content_layer,))[loss_config.content_layer]
        image = content.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([image], lr=0.05)
        style_history = []
        for step in range(60):
            style_term, content_term = image_loss(image, None, objective, content_features, None, key=step,
                                                  layout_image=content)
            optimizer.zero_grad()
            (style_term + content_term).backward()
            optimizer.step()
            with torch.no_grad():
                image.clamp_(0, 1)
            style_history.append(float(style_term.detach()))
        square = image.detach()[:, 20:44, 20:44].mean((1, 2))
        redness[layout_weight] = float(square[0] - square[2])
        style_drop[layout_weight] = 1 - style_history[-1] / style_history[0]
    assert redness[0.0] < 0.3 and redness[3.0] > 0.5, redness
    assert style_drop[3.0] > 0.5 * style_drop[0.0] > 0, style_drop
