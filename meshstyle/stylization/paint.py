"""Losses and colour steps that paint strokes: nearest-neighbour feature matching and the palette step.

NNFM (Zhang et al., "ARF: Artistic Radiance Fields", ECCV 2022). Every feature vector of the
rendered view is pulled towards its cosine-nearest feature vector of the style image,

    NNFM = sum_i w_i (1 - cos(F_i, S_nn(i))) / sum_i w_i,    nn(i) = argmax_j cos(F_i, S_j),

on mid-level layers (relu3_x / relu4_x: brush-stroke sized receptive fields). Gram and AdaIN match
global averages, which a muddy wash of the palette already satisfies; NNFM asks every neighbourhood
to look like some neighbourhood of the painting, which is what gives crisp strokes. The loss is
bounded in [0, 2] whatever the network's activation scale, so it is scale-free like the others.
The search is chunked over both the rendered and the style features, so the similarity matrix held
at once is at most `chunk x chunk` (a 4096-px texture's view and a large style image stay bounded);
the nearest neighbours are found without gradients and only the chosen distances enter the graph.

Palette step. Before optimising, the initial texture's colour mean and covariance are matched to
the style image's (the same linear transfer as `losses.match_colors`, in the other direction), so
colours are the painting's from step 0 and the optimiser only has to draw strokes. The content
target goes through the same transform: content then keeps the scene's structure (edges, distinct
regions such as a red cabinet, which becomes a distinct colour of the palette) without pulling the
colours back. Skipped with colour preservation, where the style is recoloured instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from meshstyle.stylization.losses import EPS, weight_at

CHUNK = 2048                # rows/columns of the similarity matrix computed at once
MIN_CONTENT_STD = 0.02      # a flat texture's colour spread is not amplified beyond this


def normalized_style_features(features: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) or (C,H,W) style features -> (M,C) unit vectors (the NNFM search set)."""
    flat = features.reshape(-1, features.shape[-3], features.shape[-2] * features.shape[-1])
    points = flat.permute(0, 2, 1).reshape(-1, features.shape[-3]).float()
    return F.normalize(points, dim=1)


@torch.no_grad()
def nearest_style(points: torch.Tensor, style: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """(P,) index of the cosine-nearest row of `style` (M,C, unit rows) for each unit row of `points` (P,C)."""
    best = torch.empty(len(points), dtype=torch.long, device=points.device)
    for start in range(0, len(points), chunk):
        query = points[start:start + chunk]
        top_value = query.new_full((len(query),), -float("inf"))
        top_index = torch.zeros(len(query), dtype=torch.long, device=points.device)
        for s_start in range(0, len(style), chunk):
            values, indices = (query @ style[s_start:s_start + chunk].T).max(dim=1)
            better = values > top_value
            top_value = torch.where(better, values, top_value)
            top_index = torch.where(better, indices + s_start, top_index)
        best[start:start + chunk] = top_index
    return best


def nnfm_loss(features: torch.Tensor, style: torch.Tensor, weight_map: torch.Tensor | None = None,
              chunk: int = CHUNK, search_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Weighted mean cosine distance of each feature of `features` (N,C,H,W) to its nearest style feature.

    `style` (M,C) holds unit vectors (`normalized_style_features`); `weight_map` (N,1,H0,W0) at image
    resolution or None; `search_dtype` is the precision of the nearest-neighbour search only. Views without a covered pixel contribute 0, like the statistic losses.
    """
    n, c, h, w = features.shape
    points = F.normalize(features.float().permute(0, 2, 3, 1).reshape(-1, c), dim=1)
    # The search may run in bfloat16 (the network's precision where the CPU has it): a near-tie may
    # then pick the other neighbour, which changes the loss by less than the tie; the distance is float32.
    search = points.detach().to(search_dtype)
    index = nearest_style(search, style.to(search.dtype), chunk)
    distance = (1.0 - (points * style[index].to(points.dtype)).sum(1)).reshape(n, h * w)
    if weight_map is None:
        return distance.mean()
    pixel_weight = weight_at(weight_map.float(), (h, w)).reshape(n, h * w)
    total = pixel_weight.sum(1)
    per_view = (distance * pixel_weight).sum(1) / total.clamp_min(EPS)
    return (per_view * (total > EPS).to(per_view.dtype)).mean()


@dataclass
class ColorTransform:
    """x -> matrix @ x + offset on RGB, then clamped to [0,1]: the palette step's colour map."""
    matrix: torch.Tensor      # (3,3)
    offset: torch.Tensor      # (3,)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Apply to (...,3,H,W) in [0,1]."""
        matrix = self.matrix.to(image.device, image.dtype)
        offset = self.offset.to(image.device, image.dtype)
        mapped = torch.einsum("ij,...jhw->...ihw", matrix, image) + offset[:, None, None]
        return mapped.clamp(0.0, 1.0)

    @classmethod
    def identity(cls) -> "ColorTransform":
        return cls(torch.eye(3), torch.zeros(3))


def palette_transform(source: torch.Tensor, target: torch.Tensor | Sequence[torch.Tensor],
                      source_mask: torch.Tensor | None = None, strength: float = 1.0,
                      target_weights: Sequence[float] | None = None) -> ColorTransform:
    """The affine colour map giving `source` (3,H,W) the colour mean and covariance of `target` (3,H',W').

    x' = C_t^(1/2) C_s^(-1/2) (x - mu_s) + mu_t (symmetric square roots, as Gatys et al.'s colour
    transfer). `source_mask` (H,W) picks the pixels whose statistics count (the atlas's used texels,
    not its empty space). The source's spread is floored at MIN_CONTENT_STD per axis, so a nearly
    flat texture is moved to the palette's mean instead of having its noise blown up. `strength` in
    [0,1] blends the map with the identity (0 = no change).

    Several targets (a style blend) with `target_weights` give the moments of their pooled pixels,
    each image weighing its share: the colour scheme of the blend, like its pooled Grams.
    """
    source_pixels = source.reshape(3, -1).double()
    if source_mask is not None:
        source_pixels = source_pixels[:, source_mask.reshape(-1).to(source.device)]
    source_mean, source_cov = _moments(source_pixels)
    target_mean, target_cov = pooled_moments([target] if isinstance(target, torch.Tensor) else list(target),
                                             target_weights)
    matrix = _power(target_cov, 0.5, 1e-8) @ _power(source_cov, -0.5, MIN_CONTENT_STD ** 2)
    offset = target_mean - matrix @ source_mean
    strength = float(min(max(strength, 0.0), 1.0))
    matrix = strength * matrix + (1 - strength) * torch.eye(3, dtype=matrix.dtype)
    offset = strength * offset
    return ColorTransform(matrix.float(), offset.float())


def pooled_moments(images: Sequence[torch.Tensor], weights: Sequence[float] | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, covariance) of the pixels of several images (3,H,W) pooled, image i weighing
    weights[i] (normalised; default equal) whatever its pixel count."""
    weights = [1.0] * len(images) if weights is None else [float(w) for w in weights]
    if len(weights) != len(images) or sum(weights) <= 0:
        raise ValueError(f"need one weight >= 0 per image, got {weights} for {len(images)}")
    shares = [w / sum(weights) for w in weights]
    moments = [_moments(image.reshape(3, -1).double()) for image in images]
    mean = sum(share * m for share, (m, _) in zip(shares, moments))
    second = sum(share * (c + torch.outer(m, m)) for share, (m, c) in zip(shares, moments))
    return mean, second - torch.outer(mean, mean)


def _moments(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = pixels.mean(dim=1)
    centred = pixels - mean[:, None]
    return mean, centred @ centred.T / max(1, pixels.shape[1])


def _power(symmetric: torch.Tensor, power: float, floor: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(symmetric)
    return vectors @ torch.diag(values.clamp_min(floor) ** power) @ vectors.T


def color_moments(image: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (3,), covariance (3,3)) of an image (3,H,W), over `mask` (H,W) when given."""
    pixels = image.reshape(3, -1).double()
    if mask is not None:
        pixels = pixels[:, mask.reshape(-1)]
    return _moments(pixels)
