"""A style per region, in texture space: who owns each texel, one Laplacian pyramid per painted
region, seam fills that stay inside a region, per-region paint carry-over, and `keep` regions put
back exactly.

Why not one shared pyramid: a coarse Laplacian texel spans 2^k fine texels, and neighbouring
charts of the atlas often belong to different regions, so one region's gradient would move the
colours of another region's charts (and of a `keep` region, which has no loss to pull it back).
Each painted region therefore optimises its own pyramid, and the texture the views see is each
pyramid shown only on its own region's texels (`RegionTexture`). Gutter texels belong to the
nearest chart's region, so bilinear and mip lookups at a chart border read the same region's paint.

The losses' side (each region's statistics on its own pixels only) is in patches.py
(`split_by_depth` with a face->region map) and optimize.py (`Objective.style_of`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from meshstyle.atlas.seams import SeamFill
from meshstyle.atlas.unwrap import rasterize_atlas
from meshstyle.stylization.texture import LaplacianTexture
from meshstyle.views.coverage import TexelPoints, propagate_paint


@dataclass
class TexelRegions:
    """The region of every texel of a size x size atlas (gutters: the nearest chart's)."""
    owner: np.ndarray                 # (size,size) int32 region index
    keep: frozenset[int]              # regions whose texels stay as they were
    painted: list[int]                # regions that are optimised

    @property
    def keep_mask(self) -> np.ndarray:
        """(size,size) bool: texels of `keep` regions."""
        return np.isin(self.owner, sorted(self.keep)) if self.keep else np.zeros(self.owner.shape, bool)


def texel_regions(uv: np.ndarray, size: int, face_region: np.ndarray, keep: frozenset[int],
                  painted: list[int]) -> TexelRegions:
    """Each texel's region: that of the face its centre lies in, or, off the charts, that of the
    nearest chart texel (Euclidean in texel space)."""
    from scipy.ndimage import distance_transform_edt

    face_id, _ = rasterize_atlas(uv, size)
    used = face_id >= 0
    if not used.any():
        return TexelRegions(np.zeros((size, size), np.int32), keep, painted)
    _, (rows, cols) = distance_transform_edt(~used, return_indices=True)
    owner = face_region[face_id[rows, cols]].astype(np.int32)
    return TexelRegions(owner, keep, painted)


def restrict_seams(seams: SeamFill | None, regions: TexelRegions) -> SeamFill | None:
    """The seam fill without the reads that cross a region border: a gutter texel is refilled only
    from texels of its own region, and a seam band is cross-faded only with its own region's
    gutter. Otherwise the fill, applied at every lookup, would carry one region's strokes into
    another's border texels (and their gradient back)."""
    if seams is None or len(seams.gutter) == 0:
        return seams
    owner = regions.owner.reshape(-1)
    own = owner[seams.gutter]
    inside = (owner[seams.source] == own[:, None]) | (seams.weight[:, :] == 0)
    rows = inside.all(axis=1)
    band_rows = owner[seams.band] == owner[seams.mirror] if len(seams.band) else np.zeros(0, bool)
    restricted = dataclasses.replace(seams, gutter=seams.gutter[rows], source=seams.source[rows],
                                     weight=seams.weight[rows], band=seams.band[band_rows],
                                     mirror=seams.mirror[band_rows], blend=seams.blend[band_rows])
    return restricted


class RegionTexture(torch.nn.Module):
    """The texture as one Laplacian pyramid per painted region, each shown on its own region's
    texels, and the start texture, fixed, on `keep` texels. Same interface as LaplacianTexture
    (called for the (C,H,W) texture; `layers`, `layer_levels`, `clamp_`, `regularizer`)."""

    def __init__(self, initial: torch.Tensor, levels: int, regions: TexelRegions):
        super().__init__()
        owner = torch.from_numpy(regions.owner).to(initial.device)
        self.parts = torch.nn.ModuleList(LaplacianTexture(initial, levels) for _ in regions.painted)
        # Not persistent: a checkpoint holds the pyramids only; the masks and the kept texels are
        # rebuilt from the atlas and the start texture, which a resume checks by fingerprint.
        self.register_buffer("masks", torch.stack([(owner == r) for r in regions.painted])[:, None],
                             persistent=False)
        keep = torch.from_numpy(regions.keep_mask).to(initial.device)
        self.register_buffer("fixed", initial.detach().clone() * keep.to(initial.dtype), persistent=False)

    @property
    def layers(self) -> list[torch.nn.Parameter]:
        return [layer for part in self.parts for layer in part.layers]

    @property
    def layer_levels(self) -> list[int]:
        """Each of `layers`' pyramid level (0 = finest), for the per-level learning rates."""
        return [level for part in self.parts for level in range(part.levels)]

    @property
    def levels(self) -> int:
        return self.parts[0].levels if len(self.parts) else 1

    def forward(self) -> torch.Tensor:
        texture = self.fixed
        for mask, part in zip(self.masks, self.parts):
            # `where`, not a product: the part's gradient is exactly zero off its region.
            texture = torch.where(mask, part(), texture)
        return texture

    def regularizer(self, weights=None) -> torch.Tensor:
        return sum((part.regularizer(weights) for part in self.parts), self.fixed.new_zeros(()))

    @torch.no_grad()
    def clamp_(self, low: float = 0.0, high: float = 1.0) -> None:
        for part in self.parts:
            part.clamp_(low, high)


def propagate_by_region(texture: np.ndarray, texels: TexelPoints, seen: np.ndarray,
                        face_region: np.ndarray, regions: TexelRegions) -> np.ndarray:
    """`propagate_paint` within each painted region: an unseen texel takes paint only from seen
    texels of its own region, never across a border; keep regions are left to `restore_kept`."""
    result = np.array(texture, dtype=np.float32)
    texel_region = face_region[texels.face]
    for region in regions.painted:
        inside = texel_region == region
        if not inside.any():
            continue
        subset = TexelPoints(texels.size, texels.index[inside], texels.face[inside], texels.point[inside])
        result = propagate_paint(result, subset, seen[inside])
    return result


def restore_kept(texture: np.ndarray, initial: np.ndarray, regions: TexelRegions) -> np.ndarray:
    """(H,W,3) texture with every texel of a keep region (gutters included) exactly the initial's."""
    keep = regions.keep_mask
    if not keep.any():
        return texture
    result = np.array(texture, dtype=np.float32)
    result[keep] = initial[keep]
    return result


def region_palette_masks(regions: TexelRegions, side: int) -> dict[int, torch.Tensor]:
    """Per painted region, (side,side) bool of its texels at the palette step's sample size (nearest
    texel of the full-size owner map)."""
    size = regions.owner.shape[0]
    index = np.minimum((np.arange(side) + 0.5) * size / side, size - 1).astype(np.int64)
    small = regions.owner[np.ix_(index, index)]
    return {region: torch.from_numpy(small == region) for region in regions.painted}
