"""The content metric: the rendered views against their targets, in VGG features and SSIM (see metrics.py)."""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from meshstyle.evaluate.features import CONTENT_LAYER, FeatureCache, masked_features
from meshstyle.evaluate.rendering import RenderedView
from meshstyle.stylization.losses import gaussian_blur


def content_metrics(views: list[RenderedView], targets: list[RenderedView], *,
                    features: "FeatureCache | None" = None) -> dict[str, float]:
    features = features or FeatureCache((CONTENT_LAYER,))
    distances, similarities = [], []
    for view, target in zip(views, targets):
        mask = view.fragments.mask.numpy()
        rendered = masked_features(features(view.image, key=view)[CONTENT_LAYER], mask)
        wanted = masked_features(features(target.image, key=target)[CONTENT_LAYER], mask)
        if len(wanted):
            distances.append(float((rendered - wanted).pow(2).sum() / wanted.pow(2).sum().clamp_min(1e-12)))
        if mask.any():
            similarities.append(ssim(view.image, target.image, mask))
    if not similarities:
        return {"skipped": "the views do not see the mesh"}
    figures = {"ssim": float(np.mean(similarities))}
    if distances:
        figures["feature_distance"] = float(np.mean(distances))
    figures["views"] = float(len(views))
    return figures


def ssim(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004) of two (H,W,3) images in [0,1] over `mask`."""
    radius = int(np.ceil(3 * sigma))

    def blur(x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x, sigma, replicate=True)

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    y = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).permute(2, 0, 1)[None]
    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x ** 2
    var_y = blur(y * y) - mean_y ** 2
    cov = blur(x * y) - mean_x * mean_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / ((mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2))
    ssim_map = ssim_map[0].mean(0).numpy()
    if mask is None:
        return float(ssim_map.mean())
    # Windows that reach off the mesh compare background, not content.
    inner = ndimage.binary_erosion(mask, iterations=radius)
    selected = inner if inner.any() else mask
    return float(ssim_map[selected].mean())
