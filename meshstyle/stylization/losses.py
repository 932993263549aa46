"""2-D style and content losses on VGG feature maps (pure functions; the 3-D parts live in patches.py).

Masks: a rendered view covers only part of its image. The caller composites it over a neutral fill
and passes a per-pixel `weight_map` (N,1,H,W) at image resolution (0 = not covered, and possibly
fractional depth/angle weights). Each layer sees the map area-averaged to its own resolution
(`weight_at`), and every statistic is a weighted average over pixels, so uncovered pixels neither
count nor receive gradient, and a view covering 5% of its image has statistics as strong as a view
covering all of it.

Scale-free losses (see `meshstyle.stylization.vgg` for why): every per-layer loss is relative to its target,
  Gram:    |G - G*|^2 / |G*|^2                   (Frobenius norms)
  AdaIN:   (|mu - mu*|^2 + |sd - sd*|^2) / (|mu*|^2 + |sd*|^2)
  SWD:     sum_k W2^2(proj_k F, proj_k F*) / sum_k var(proj_k F*)   (sliced Wasserstein, Heitz et al. 2021)
  content: sum_p w_p |F_p - F*_p|^2 / sum_p w_p |F*_p|^2
so each starts near 1 when the image is far from the target, whatever the network's activation
scale, and the layer weights and style/content weights are plain ratios (measurements in
scripts/style2d.py's docstring).

Colour preservation (Gatys et al. 2016): `match_colors` recolours the style image to the content's
colour mean and covariance before its targets are computed. It acts once, on the style targets, so
the optimisation and every view stay consistent and the painting's contrast structure survives.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from meshstyle.stylization.vgg import VGG19

EPS = 1e-8            # a total pixel weight below this means "nothing covered" (weights are in [0,1])
TINY = 1e-20          # guards divisions by a target norm that may be zero, without biasing small scales
SWD_POINTS = 16384    # style feature vectors kept per layer (pooled over the style scales)
SWD_SLICE_SETS = 8    # precomputed sets of random directions per layer; each loss evaluation uses one
SWD_QUANTILES = 1024  # style quantiles kept per direction
COLOR_EPS = 1e-5      # regularises colour covariances of flat (e.g. grey) images


def weight_at(weight_map: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """An image-resolution weight map (N,1,H0,W0) area-averaged to a layer's (H,W)."""
    size = (int(size[-2]), int(size[-1]))
    if tuple(weight_map.shape[-2:]) == size:
        return weight_map
    return F.adaptive_avg_pool2d(weight_map, size)


def _layer_weight(features: torch.Tensor, weight_map: torch.Tensor | None) -> torch.Tensor:
    """Per-pixel weights (N,1,H*W) for `features`; all ones without a map."""
    n, _, h, w = features.shape
    if weight_map is None:
        return features.new_ones(n, 1, h * w)
    return weight_at(weight_map.to(features.dtype), (h, w)).reshape(weight_map.shape[0], 1, h * w)


def gram(features: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted Gram matrix (N,C,C) of features (N,C,H,W), normalised by the total weight.

    `weight` (N,1,H,W) is at feature resolution (see `weight_at`); pixels of weight 0 do not count.
    A view with no covered pixel gets a zero Gram.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    if weight is None:
        return flat @ flat.transpose(1, 2) / (h * w)
    pixel_weight = weight.reshape(weight.shape[0], 1, h * w).to(features.dtype)
    total = pixel_weight.sum(dim=2, keepdim=True).clamp_min(EPS)
    return (flat * pixel_weight) @ flat.transpose(1, 2) / total


def mean_std(features: torch.Tensor, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted per-channel mean and standard deviation (N,C) each: the AdaIN statistics."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    pixel_weight = (features.new_ones(n, 1, h * w) if weight is None
                    else weight.reshape(weight.shape[0], 1, h * w).to(features.dtype))
    total = pixel_weight.sum(dim=2).clamp_min(EPS)
    mean = (flat * pixel_weight).sum(dim=2) / total
    variance = ((flat - mean[..., None]) ** 2 * pixel_weight).sum(dim=2) / total
    return mean, (variance + TINY).sqrt()


@dataclass
class StyleTargets:
    """What the style image's features should look like, per VGG layer (computed once per run)."""
    statistic: str                                                  # "gram" | "adain" | "swd"
    scales: tuple[float, ...]
    gram: dict[str, torch.Tensor] = field(default_factory=dict)    # layer -> (C,C), statistic "gram"
    mean: dict[str, torch.Tensor] = field(default_factory=dict)    # layer -> (C,), statistic "adain"
    std: dict[str, torch.Tensor] = field(default_factory=dict)     # layer -> (C,), statistic "adain"
    points: dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> (M,C) feature vectors, statistic "swd"
    slices: dict[str, "StyleSlices"] = field(default_factory=dict)  # layer -> the points' sorted projections, "swd"

    def __post_init__(self) -> None:
        if self.statistic == "swd" and not self.slices:
            self.slices = {layer: slice_style(points, layer) for layer, points in self.points.items()}

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple({"gram": self.gram, "adain": self.mean, "swd": self.points}[self.statistic])

    def to(self, device: str | torch.device) -> "StyleTargets":
        move = lambda stats: {layer: value.to(device) for layer, value in stats.items()}  # noqa: E731
        return StyleTargets(self.statistic, self.scales, move(self.gram), move(self.mean), move(self.std),
                            move(self.points), {layer: value.to(device) for layer, value in self.slices.items()})


@dataclass
class StyleSlices:
    """A style layer's feature distribution along fixed sets of random directions, sorted once.

    Projecting and sorting all style features at every step cost 30x a Gram step on 2 cores; with
    the style side precomputed a step only sorts the view's own projections."""
    directions: torch.Tensor   # (S,C,K) unit columns, S sets of K = C directions
    quantiles: torch.Tensor    # (S,Q,K) the style's projections at the midpoint quantiles (j + 1/2) / Q
    variance: torch.Tensor     # (S,) sum over a set's directions of the projections' variance

    def to(self, device: str | torch.device) -> "StyleSlices":
        return StyleSlices(self.directions.to(device), self.quantiles.to(device), self.variance.to(device))


def slice_style(points: torch.Tensor, layer: str, sets: int = SWD_SLICE_SETS,
                quantile_count: int = SWD_QUANTILES) -> StyleSlices:
    """`StyleSlices` of style feature vectors (M,C); directions seeded by the layer name (reproducible)."""
    points = points.float()
    count, channels = points.shape
    generator = torch.Generator().manual_seed(zlib.crc32(layer.encode()))
    directions = torch.randn(sets, channels, channels, generator=generator)
    directions = (directions / directions.norm(dim=1, keepdim=True)).to(points.device)
    kept = min(count, quantile_count)
    # Midpoint quantiles: with kept == count they are the sorted points themselves.
    position = ((torch.arange(kept, device=points.device) + 0.5) * count / kept - 0.5).clamp(0, count - 1)
    below = position.floor().long().clamp(max=max(0, count - 2))
    above = (below + 1).clamp(max=count - 1)
    fraction = position - below
    quantiles, variance = [], []
    for index in range(sets):
        # (K,M): sorting along the contiguous last dimension is several times faster than down columns.
        projected = (directions[index].T @ points.T).sort(dim=1).values
        quantiles.append(torch.lerp(projected[:, below], projected[:, above], fraction.view(1, -1)).T)
        variance.append(projected.var(dim=1, unbiased=False).sum())
    return StyleSlices(directions, torch.stack(quantiles), torch.stack(variance).clamp_min(TINY))


def blend_targets(targets: Sequence[StyleTargets], weights: Sequence[float]) -> StyleTargets:
    """One target mixing several styles' statistics with `weights` (normalised to sum to 1).

    Mixed per statistic, so the run optimises towards the blend itself (not a mix of separately
    stylized textures): Grams are averaged; AdaIN means are averaged and the stds follow from the
    averaged second moments, i.e. the statistics of the pooled features of all styles."""
    if len(targets) != len(weights) or not targets:
        raise ValueError(f"need one weight per style, got {len(weights)} for {len(targets)}")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise ValueError("style weights must be >= 0 and not all 0")
    share = [float(w) / total for w in weights]
    first = targets[0]
    if len(targets) == 1:
        return first
    if any(t.statistic != first.statistic for t in targets):
        raise ValueError("blended styles must use one statistic")
    if first.statistic == "gram":
        gram = {layer: sum(w * t.gram[layer] for w, t in zip(share, targets)) for layer in first.gram}
        return StyleTargets("gram", first.scales, gram=gram)
    if first.statistic == "swd":
        # The pooled distribution: each style contributes its share of the feature vectors.
        points = {}
        for layer in first.points:
            parts = [t.points[layer][:max(1, round(w * len(t.points[layer])))] for w, t in zip(share, targets) if w > 0]
            points[layer] = torch.cat(parts)
        return StyleTargets("swd", first.scales, points=points)
    mean = {layer: sum(w * t.mean[layer] for w, t in zip(share, targets)) for layer in first.mean}
    second = {layer: sum(w * (t.std[layer] ** 2 + t.mean[layer] ** 2) for w, t in zip(share, targets))
              for layer in first.mean}
    std = {layer: (second[layer] - mean[layer] ** 2).clamp_min(TINY).sqrt() for layer in first.mean}
    return StyleTargets("adain", first.scales, mean=mean, std=std)


def style_targets(vgg: VGG19, style_image: torch.Tensor, layers: Sequence[str],
                  scales: Sequence[float] = (1.0,), statistic: str = "gram") -> StyleTargets:
    """Target statistics of `style_image` (3,H,W) RGB in [0,1], pooled over a pyramid of `scales`.

    Scales combine by pooling second moments: the Gram targets are the average of the per-scale
    Grams, and the AdaIN targets the mean and std of all scales' pixels with each scale weighted
    equally. Strokes of several sizes in the painting then all count, and no single scale decides
    how big the strokes on the mesh become.
    """
    if statistic not in ("gram", "adain", "swd"):
        raise ValueError(f"statistic must be 'gram', 'adain' or 'swd', not {statistic!r}")
    if style_image.ndim != 3 or style_image.shape[0] != 3:
        raise ValueError(f"style image must be (3,H,W), got {tuple(style_image.shape)}")
    if not scales:
        raise ValueError("need at least one style scale")
    layers = tuple(layers)
    device = next(vgg.parameters()).device
    grams = {layer: [] for layer in layers}
    first_moments = {layer: [] for layer in layers}
    second_moments = {layer: [] for layer in layers}
    point_sets = {layer: [] for layer in layers}
    with torch.no_grad():
        for scale in scales:
            image = _rescale(style_image.to(device)[None], scale)
            for layer, features in vgg(image, layers).items():
                if features.shape[-1] == 0 or features.shape[-2] == 0:
                    raise ValueError(f"style image at scale {scale} ({tuple(image.shape[-2:])} px) is too "
                                     f"small for {layer}")
                if statistic == "gram":
                    grams[layer].append(gram(features)[0])
                elif statistic == "swd":
                    point_sets[layer].append(features[0].flatten(1).T)
                else:
                    mean, std = mean_std(features)
                    first_moments[layer].append(mean[0])
                    second_moments[layer].append(std[0] ** 2 + mean[0] ** 2)
    if statistic == "gram":
        return StyleTargets("gram", tuple(scales), gram={k: torch.stack(v).mean(0) for k, v in grams.items()})
    if statistic == "swd":
        return StyleTargets("swd", tuple(scales), points={layer: _even_sample(torch.cat(sets).float(), SWD_POINTS)
                                                          for layer, sets in point_sets.items()})
    means = {layer: torch.stack(first_moments[layer]).mean(0) for layer in layers}
    stds = {layer: (torch.stack(second_moments[layer]).mean(0) - means[layer] ** 2).clamp_min(TINY).sqrt()
            for layer in layers}
    return StyleTargets("adain", tuple(scales), mean=means, std=stds)


def _even_sample(points: torch.Tensor, count: int) -> torch.Tensor:
    """At most `count` rows of `points`, in a fixed shuffled order (so a prefix is a fair sample too:
    `blend_targets` takes prefixes). Seeded, so the targets do not depend on the global RNG."""
    order = torch.randperm(len(points), generator=torch.Generator().manual_seed(len(points)))
    return points[order[:count].to(points.device)].contiguous()


def _rescale(image: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return image
    height, width = image.shape[-2:]
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=scale < 1.0).clamp(0, 1)


def projection_key(*parts: int) -> int:
    """A stable seed (not Python's per-process `hash`) from small non-negative integers."""
    key = 0
    for part in parts:
        key = (key * 1_000_003 + int(part)) % 2**61
    return key


def sliced_wasserstein(features: torch.Tensor, pixel_weight: torch.Tensor | None, slices: StyleSlices,
                       set_index: int) -> torch.Tensor:
    """Per-view (N,) scale-free sliced 2-Wasserstein distance of features (N,C,H,W) to a style layer.

    Along each direction of set `set_index` the view's projections are sorted and each is pulled to
    the style's value at the same (weighted) quantile: every feature goes to a place in the style's
    distribution, so the whole distribution is matched, not only its second moments (Gram).
    Pixel weights (angle, depth blend, coverage) weigh both the quantile positions and the errors."""
    n, c, h, w = features.shape
    directions = slices.directions[set_index].to(features.dtype)
    style_sorted = slices.quantiles[set_index].to(features.dtype).T.contiguous()                         # (K,Q)
    count = style_sorted.shape[1]
    losses = []
    for view in range(n):
        view_weight = (features.new_ones(h * w) if pixel_weight is None
                       else pixel_weight[view].reshape(h * w).to(features.dtype))
        keep = view_weight > EPS
        if int(keep.sum()) < 2:
            losses.append(features.new_zeros(()))
            continue
        # (K,P): every direction's projections in one contiguous row, sorted along it.
        projected = directions.T @ features[view].reshape(c, h * w)[:, keep]
        ordered, order = projected.sort(dim=1)
        weight_sorted = view_weight[keep][order]                                                           # (K,P)
        total = weight_sorted.sum(dim=1, keepdim=True)
        quantile = (weight_sorted.cumsum(dim=1) - 0.5 * weight_sorted) / total
        # Midpoint quantiles on both sides: the same set of points matches itself exactly.
        position = (quantile * count - 0.5).clamp(0, count - 1)
        below = position.floor().long().clamp(max=max(0, count - 2))
        above = (below + 1).clamp(max=count - 1)
        target = torch.lerp(style_sorted.gather(1, below), style_sorted.gather(1, above), position - below)
        error = (weight_sorted * (ordered - target).pow(2)).sum(dim=1) / total[:, 0]
        losses.append(error.sum() / slices.variance[set_index].to(features.dtype))
    return torch.stack(losses)


def style_layer_losses(features: Mapping[str, torch.Tensor], weight_map: torch.Tensor | None,
                       targets: StyleTargets, layers: Sequence[str] | None = None,
                       projection_key: int | None = None) -> dict[str, torch.Tensor]:
    """Scale-free style loss per layer (each a scalar, averaged over the batch of views).

    features: VGG features (N,C,H,W) of the rendered images; weight_map: (N,1,H0,W0) at image
    resolution or None (all pixels count). Views without any covered pixel contribute 0.
    `projection_key` picks the sliced Wasserstein directions (statistic "swd" only; None: at random).
    """
    losses = {}
    for layer in targets.layers if layers is None else layers:
        if layer not in features:
            raise KeyError(f"no features for style layer {layer}; request it from the VGG")
        layer_features = features[layer]
        n, _, h, w = layer_features.shape
        pixel_weight = None if weight_map is None else weight_at(weight_map, (h, w))
        covered = (torch.ones(n, device=layer_features.device) if pixel_weight is None
                   else (pixel_weight.reshape(n, -1).sum(1) > EPS).to(layer_features.dtype))
        if targets.statistic == "gram":
            target = targets.gram[layer]
            difference = gram(layer_features, pixel_weight) - target
            per_view = difference.pow(2).sum((1, 2)) / target.pow(2).sum().clamp_min(TINY)
        elif targets.statistic == "swd":
            slices = targets.slices[layer]
            sets = len(slices.directions)
            set_index = (int(torch.randint(sets, ())) if projection_key is None
                         else (projection_key + zlib.crc32(layer.encode())) % sets)
            per_view = sliced_wasserstein(layer_features, pixel_weight, slices, set_index)
        else:
            mean, std = mean_std(layer_features, pixel_weight)
            target_mean, target_std = targets.mean[layer], targets.std[layer]
            scale = (target_mean.pow(2).sum() + target_std.pow(2).sum()).clamp_min(TINY)
            per_view = ((mean - target_mean).pow(2).sum(1) + (std - target_std).pow(2).sum(1)) / scale
        losses[layer] = (per_view * covered).mean()
    return losses


def weighted_sum(per_layer: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]) -> torch.Tensor:
    """sum_l layer_weights[l] * per_layer[l] over the layers that have a weight."""
    terms = [float(weight) * per_layer[layer] for layer, weight in layer_weights.items() if weight != 0]
    if not terms:
        raise ValueError("all style layer weights are zero")
    return torch.stack(terms).sum()


def style_loss(features: Mapping[str, torch.Tensor], weight_map: torch.Tensor | None, targets: StyleTargets,
               layer_weights: Mapping[str, float], projection_key: int | None = None) -> torch.Tensor:
    """Weighted sum of the scale-free per-layer style losses (a scalar)."""
    layers = [layer for layer, weight in layer_weights.items() if weight != 0]
    return weighted_sum(style_layer_losses(features, weight_map, targets, layers, projection_key), layer_weights)


def content_loss(features: Mapping[str, torch.Tensor], target_features: Mapping[str, torch.Tensor],
                 weight_map: torch.Tensor | None, layer: str) -> torch.Tensor:
    """Scale-free content loss at `layer`: weighted squared error relative to the target's energy."""
    current, target = features[layer], target_features[layer].detach()
    if current.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"content features at {layer} have size {tuple(current.shape[-2:])}, "
                         f"target {tuple(target.shape[-2:])}")
    pixel_weight = _layer_weight(current, weight_map)
    n, c = current.shape[:2]
    error = (current - target).reshape(n, c, -1).pow(2).sum(1, keepdim=True)
    energy = target.reshape(target.shape[0], c, -1).pow(2).sum(1, keepdim=True)
    per_view = (error * pixel_weight).sum((1, 2)) / (energy * pixel_weight).sum((1, 2)).clamp_min(TINY)
    return per_view.mean()


LAYOUT_SCALE = 3 * 0.1 ** 2   # squared colour error of 0.1 in every channel: a layout loss of 1


def gaussian_blur(images: torch.Tensor, sigma: float, replicate: bool = False) -> torch.Tensor:
    """(N,C,H,W) blurred by a separable Gaussian of `sigma` pixels, cut at 3 sigma. Borders are
    padded with zeros (callers averaging under a mask divide by the blurred mask) or replicated."""
    radius = max(1, int(math.ceil(3 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    taps = taps / taps.sum()
    channels = images.shape[1]
    padding = radius
    if replicate:
        images, padding = F.pad(images, (radius,) * 4, mode="replicate"), 0
    rows = F.conv2d(images, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), padding=(0, padding), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), padding=(padding, 0), groups=channels)


def layout_loss(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, blur: float) -> torch.Tensor:
    """Colour-layout loss: the colours of (3,h,w) `image` and `target` averaged under a Gaussian of
    `blur` pixels (over covered pixels only), compared in RGB; 1 is an error of 0.1 per channel.

    Gram and content features do not hold an object's colour: relu4_2 keeps its outline, and the
    Gram only the colour histogram of the whole view, so a red cabinet may turn the wall's blue
    with both losses low. This term keeps large colour regions where the (palette-mapped) target
    has them and leaves detail finer than the blur, where strokes live, to the style loss. A
    Gaussian, not box windows: the gradient of box means is flat per window and painted a lattice.
    `weight` (1,1,h,w): pixels that count (uncovered ones are background, not layout)."""
    weight = image.new_ones(1, 1, *image.shape[-2:]) if weight is None else weight.to(image.dtype)
    covered = gaussian_blur(weight, blur).clamp_min(EPS)
    means = gaussian_blur(torch.stack([image, target.to(image.dtype)]) * weight, blur) / covered
    error = (means[0] - means[1]).pow(2).sum(0, keepdim=True)
    return (error * weight[0]).sum() / (weight.sum().clamp_min(EPS) * LAYOUT_SCALE)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation (mean absolute difference of neighbours) of (...,C,H,W)."""
    return ((image[..., :, 1:] - image[..., :, :-1]).abs().mean()
            + (image[..., 1:, :] - image[..., :-1, :]).abs().mean())


def match_colors(style_image: torch.Tensor, content_image: torch.Tensor) -> torch.Tensor:
    """The style image (3,H,W) recoloured to the content's colour mean and covariance, in [0,1].

    Gatys et al. 2016's linear transfer with symmetric matrix square roots:
    x' = C_c^(1/2) C_s^(-1/2) (x - mu_s) + mu_c. Clamping to [0,1] can shift the mean slightly when
    the content's colours are very saturated.
    """
    style_pixels = style_image.reshape(3, -1).double()
    content_pixels = content_image.reshape(3, -1).double()
    style_mean, style_cov = _color_moments(style_pixels)
    content_mean, content_cov = _color_moments(content_pixels)
    transform = _matrix_power(content_cov, 0.5) @ _matrix_power(style_cov, -0.5)
    recoloured = transform @ (style_pixels - style_mean) + content_mean
    return recoloured.reshape(style_image.shape).to(style_image.dtype).clamp(0, 1)


def _color_moments(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    covariance = centred @ centred.T / pixels.shape[1]
    return mean, covariance + COLOR_EPS * torch.eye(3, dtype=pixels.dtype)


def _matrix_power(symmetric: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(symmetric)
    return vectors @ torch.diag(values.clamp_min(COLOR_EPS) ** power) @ vectors.T
