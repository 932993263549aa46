"""The style metric: the rendered views' VGG statistics against the style image's (see metrics.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meshstyle.evaluate.features import STYLE_LAYERS, FeatureCache, masked_features
from meshstyle.evaluate.rendering import RenderedView
from meshstyle.inputs.styles import resize_long_side


@dataclass
class _ProjectedStyle:
    """The style's features of one layer along fixed random directions, ready for comparisons."""
    directions: torch.Tensor   # (C,K) unit columns
    quantiles: torch.Tensor    # (Q,K) sorted projections at evenly spaced quantiles
    spread: torch.Tensor       # () RMS over directions of the projections' standard deviation

    @classmethod
    def of(cls, points: torch.Tensor, directions: torch.Tensor, quantiles: int = 256) -> "_ProjectedStyle":
        projected = points @ directions
        return cls(directions, _quantiles(projected, quantiles),
                   projected.std(dim=0).pow(2).mean().sqrt().clamp_min(1e-8))

    def distance(self, points: torch.Tensor) -> float:
        """Sliced 2-Wasserstein distance of points (N,C) to the style, in units of its spread."""
        gap = _quantiles(points @ self.directions, len(self.quantiles)) - self.quantiles
        return float(gap.pow(2).mean().sqrt() / self.spread)


def _quantiles(values: torch.Tensor, count: int) -> torch.Tensor:
    """(N,K) -> (count,K) evenly spaced quantiles per column (nearest rank; sets differ in size)."""
    ranks = torch.linspace(0, len(values) - 1, count).round().long()
    return values.sort(dim=0).values[ranks]


def style_metrics(views: list[RenderedView], style_image: np.ndarray, *, style_size: int = 384,
                  seed: int = 0, features: "FeatureCache | None" = None,
                  directions_per_layer: int = 64) -> dict[str, float]:
    features = features or FeatureCache(STYLE_LAYERS)
    style = resize_long_side(np.asarray(style_image, dtype=np.float32)[..., :3], style_size)
    style_features = features(style)
    generator = torch.Generator().manual_seed(seed)
    projected_style = {}
    for layer in STYLE_LAYERS:
        points = style_features[layer].flatten(1).T
        directions = torch.randn(points.shape[1], directions_per_layer, generator=generator)
        projected_style[layer] = _ProjectedStyle.of(points, directions / directions.norm(dim=0, keepdim=True))

    per_layer = {layer: [] for layer in STYLE_LAYERS}
    for view in views:
        mask = view.fragments.mask.numpy()
        view_features = features(view.image, key=view)
        for layer in STYLE_LAYERS:
            points = masked_features(view_features[layer], mask)
            if len(points) >= 2:
                per_layer[layer].append(projected_style[layer].distance(points))
    if not any(per_layer.values()):
        return {"skipped": "no view covers a whole feature cell"}
    layer_means = {layer: float(np.mean(values)) for layer, values in per_layer.items() if values}
    figures = {"swd": float(np.mean(list(layer_means.values())))}
    figures.update({f"swd_{layer}": value for layer, value in layer_means.items()})
    figures["views"] = float(len(views))
    return figures
