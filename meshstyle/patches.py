"""Depth-split patches and view-angle weights: which pixels of which pyramid level feed the style loss.

Depth (StyleMesh's "depth-aware" patches). One pixel of an image `h` pixels high, at z-depth `d`,
spans `d / f_h` metres on a fronto-parallel surface, where `f_h` is the focal length in pixels at
that height (it scales with `h`). A VGG feature covers a fixed number of pixels, so for a brush
stroke to keep one size in the world a pixel at depth `d` should be seen in an image of height

    h*(d) = h_0 * d / d_0,

where `h_0` is the coarsest level's height and `d_0` the *reference depth*: the depth at which the
coarsest level already has the wanted size (one scene-wide constant, so strokes also match across
views; see `reference_depth`). In pyramid-level units (level k has height h_0 * s**k) that is

    level(d) = log(d / d_0) / log(s),   clipped to [0, levels - 1].

Each pixel's weight is split between the two nearest levels by linear interpolation in that
log-height: w_k = max(0, 1 - |level(d) - k|). The weights of one surface point sum to 1 over the
levels, so no part of the surface is counted twice. Far pixels go to the finer (higher) levels,
near ones to the coarse level; beyond the pyramid's range the nearest end level takes them.

VGG then runs per level only on the bounding box(es) of the pixels with weight at that level, plus
a margin of context, instead of on whole frames (TRAPS.md: whole-frame VGG at a third level cost
2.5x for 3% of the pixels). Levels holding too small a share of the view's weight are skipped.

Angle. Surfaces seen at a grazing angle are stretched in the image, so a stroke painted there would
be smeared along the surface. Like StyleMesh, pixels whose view ray meets the normal at more than
`angle_threshold_deg` get no style gradient; the others are weighted by cos(angle), the
foreshortening of their texels, so head-on views of a surface dominate.

With `depth_aware` off there is one level (the coarsest); with `angle_aware` off every covered
pixel weighs 1: together the "2-D only" ablation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import LossConfig, RasterConfig
from .fragments import Fragments, ViewPyramid

Box = tuple[int, int, int, int]   # (y0, y1, x0, x1), half-open, in pixels of the patch's level


@dataclass
class LevelPatch:
    """One crop of one pyramid level of one view, with what the loss needs from its fragments."""
    level: int
    box: Box
    weight: torch.Tensor      # (1,1,h,w) style weight: depth share * angle weight, 0 off the mesh
    uv: torch.Tensor          # (h,w,2) crop of the level's UVs
    footprint: torch.Tensor   # (h,w) crop of the level's texel footprint
    mask: torch.Tensor        # (h,w) bool crop of the level's coverage

    @property
    def pixels(self) -> int:
        return int(self.weight.shape[-2] * self.weight.shape[-1])


def angle_weight(fragments: Fragments, config: LossConfig) -> torch.Tensor:
    """(H,W) style weight from the view angle: cos(angle) up to the threshold, 0 beyond and off the mesh."""
    covered = fragments.mask.to(torch.float32)
    if not config.angle_aware:
        return covered
    cos_threshold = math.cos(math.radians(config.angle_threshold_deg))
    cos_angle = fragments.cos_angle.clamp(0.0, 1.0)
    return torch.where(cos_angle >= cos_threshold, cos_angle, torch.zeros_like(cos_angle)) * covered


def level_of_depth(depth: torch.Tensor, reference: float, raster: RasterConfig) -> torch.Tensor:
    """Continuous pyramid level wanted by each depth (module docstring), clipped to the pyramid."""
    top = max(0, raster.levels - 1)
    if top == 0:
        return torch.zeros_like(depth)
    level = torch.log(depth.clamp_min(1e-6) / reference) / math.log(raster.level_scale)
    return level.clamp(0.0, float(top))


def depth_weights(fragments: Fragments, level: int, reference: float, raster: RasterConfig) -> torch.Tensor:
    """(H,W) share of each pixel of `fragments` (rendered at pyramid `level`) that belongs to that level."""
    wanted = level_of_depth(fragments.depth, reference, raster)
    share = (1.0 - (wanted - level).abs()).clamp_min(0.0)
    return share * fragments.mask.to(torch.float32)


def reference_depth(pyramids: list[ViewPyramid], config: LossConfig) -> float:
    """The scene-wide depth d_0 at which the coarsest level has the wanted stroke size.

    `config.reference_depth` > 0 fixes it in metres; otherwise it is the
    `reference_depth_quantile` of the covered depths of all views, so that share of the pixels is
    seen at the coarse level (or nearer) and the rest climbs the pyramid with distance.
    """
    if config.reference_depth > 0:
        return float(config.reference_depth)
    depths = [p.levels[0].depth[p.levels[0].mask] for p in pyramids]
    depths = torch.cat([d.reshape(-1) for d in depths]) if depths else torch.zeros(0)
    if depths.numel() == 0:
        return 1.0
    # torch.quantile refuses very large inputs; a fixed stride keeps it exact enough and deterministic.
    stride = max(1, depths.numel() // 1_000_000)
    return float(torch.quantile(depths[::stride].double(), config.reference_depth_quantile))


def split_by_depth(pyramid: ViewPyramid, config: LossConfig, raster: RasterConfig,
                   reference: float) -> list[LevelPatch]:
    """The patches of one view: per used level, crops around the pixels that belong to it."""
    levels = pyramid.levels if config.depth_aware else pyramid.levels[:1]
    base_height = pyramid.levels[0].height
    weights: list[torch.Tensor] = []
    for index, fragments in enumerate(levels):
        share = depth_weights(fragments, index, reference, raster) if config.depth_aware else \
            fragments.mask.to(torch.float32)
        weights.append(share * angle_weight(fragments, config))
    # Compare levels in coarsest-level pixel units: a level-k pixel is (h_0/h_k)^2 of one.
    area = [float(w.sum()) * (base_height / f.height) ** 2 for w, f in zip(weights, levels)]
    total = sum(area)
    patches: list[LevelPatch] = []
    if total <= 0:
        return patches
    for index, (fragments, weight) in enumerate(zip(levels, weights)):
        if area[index] < config.min_level_share * total:
            continue
        for box in active_boxes(weight > 0, config.patch_margin, config.min_patch_size):
            y0, y1, x0, x1 = box
            patches.append(LevelPatch(
                level=index, box=box,
                weight=weight[y0:y1, x0:x1].contiguous()[None, None],
                uv=fragments.uv[y0:y1, x0:x1].contiguous(),
                footprint=fragments.footprint[y0:y1, x0:x1].contiguous(),
                mask=fragments.mask[y0:y1, x0:x1].contiguous()))
    return patches


def active_boxes(active: torch.Tensor, margin: int, min_size: int) -> list[Box]:
    """Bounding boxes (with `margin` of context) of the active pixels of an (H,W) mask.

    Column runs separated by a gap wider than two margins become separate boxes (far pixels often
    sit in two strips, left and right of a near object); within each the row range is the active
    rows' span. Boxes grow to at least `min_size` (VGG's deepest style layer is 1/16 resolution).
    """
    active_np = active.cpu().numpy()
    height, width = active_np.shape
    columns = np.flatnonzero(active_np.any(axis=0))
    if columns.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(columns) > 2 * margin + 1)
    starts = np.concatenate([[columns[0]], columns[breaks + 1]])
    ends = np.concatenate([columns[breaks], [columns[-1]]])
    boxes: list[Box] = []
    for first, last in zip(starts, ends):
        rows = np.flatnonzero(active_np[:, first:last + 1].any(axis=1))
        y0, y1 = _grow(rows[0] - margin, rows[-1] + 1 + margin, min_size, height)
        x0, x1 = _grow(first - margin, last + 1 + margin, min_size, width)
        boxes.append((y0, y1, x0, x1))
    return boxes


def _grow(start: int, stop: int, min_size: int, limit: int) -> tuple[int, int]:
    """Clip [start, stop) to [0, limit) after widening it symmetrically to at least `min_size`."""
    size = min(max(stop - start, min_size), limit)
    centre = (start + stop) / 2
    start = int(round(centre - size / 2))
    start = min(max(start, 0), limit - size)
    return int(start), int(start + size)


def pixel_size_m(fragments: Fragments, focal_px: float) -> torch.Tensor:
    """(H,W) metres spanned by one pixel on a fronto-parallel surface at each pixel's depth."""
    return fragments.depth / focal_px
