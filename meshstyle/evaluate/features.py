"""VGG features of rendered views, computed once per image and shared by the style and content metrics."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from meshstyle.stylization.vgg import load_vgg

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_2"


class FeatureCache:
    """VGG features per image at every layer any requested metric needs, one forward pass each."""

    def __init__(self, layers: Sequence[str]):
        self.layers = tuple(dict.fromkeys(layers))
        self._vgg = None
        self._cache: dict[int, tuple[object, dict[str, torch.Tensor]]] = {}

    def __call__(self, image: np.ndarray, key: object | None = None) -> dict[str, torch.Tensor]:
        # Keyed by identity; the key object is kept alive with its entry so its id is not reused.
        if key is not None and id(key) in self._cache:
            return self._cache[id(key)][1]
        if self._vgg is None:
            self._vgg = load_vgg()
        batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            computed = {layer: value[0] for layer, value in self._vgg(batch, self.layers).items()}
        if key is not None:
            self._cache[id(key)] = (key, computed)
        return computed


def covered_cells(mask: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(h,w) bool: feature cells whose whole receptive patch of pixels lies on the mesh."""
    coverage = F.adaptive_avg_pool2d(torch.from_numpy(mask.astype(np.float32))[None, None], size)[0, 0]
    return coverage > 0.999


def masked_features(features: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """(C,h,w) -> (N,C) feature vectors of covered cells."""
    cells = covered_cells(mask, tuple(features.shape[-2:]))
    return features[:, cells].T
