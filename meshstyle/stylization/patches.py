"""Depth-split patches and view-angle weights: which pixels of which pyramid level feed the style loss.

Depth (StyleMesh's "depth-aware" patches). One pixel of an image `h` pixels high, at z-depth `d`,
spans `d / f_h` metres on a fronto-parallel surface, where `f_h` is the focal length in pixels at
that height (it scales with `h`). A VGG feature covers a fixed number of pixels, so for a brush
stroke to keep one size in the world a pixel at depth `d` should be seen in an image of height

    h*(d) = h_0 * d / d_0,

where `h_0` is the coarsest level's height and `d_0` the *reference depth*: the depth at which the
coarsest level already has the wanted size (one scene-wide constant, so strokes also match across
views; see `reference_depth`). The pyramid carries its levels' heights h_k, so the level wanted
is where h* falls among them, linear in log-height between two levels:

    level(d) = k + log(h*(d) / h_k) / log(h_{k+1} / h_k)   for h_k <= h*(d) <= h_{k+1},

clipped to [0, levels - 1]. With the configured h_k = h_0 * s**k this is log(d / d_0) / log(s).

Each pixel's weight is split between the two nearest levels by linear interpolation in that
log-height, cross-fading over a band `level_blend` levels wide centred half-way between them
(w_k = clip(0.5 + (0.5 - |level(d) - k|) / blend, 0, 1); blend = 1 is plain linear interpolation).
The weights of one surface point sum to 1 over the levels, so no part of the surface is counted
twice; a narrow band keeps the levels' pixel sets, and so their VGG crops, mostly apart. Far pixels go to the finer (higher) levels,
near ones to the coarse level; beyond the pyramid's range the nearest end level takes them.

VGG then runs per level only on the bounding box(es) of the pixels with weight at that level, plus
a margin of context, instead of on whole frames (docs/TRAPS.md: whole-frame VGG at a third level cost
2.5x for 3% of the pixels). A level holding less than `min_level_share` of the view's weight is
merged into the nearest level that holds more: its pixels are seen at that level's size.

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
from typing import Sequence

import numpy as np
import torch

from meshstyle.config import LossConfig
from meshstyle.raster.fragments import Fragments, ViewPyramid

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
    share: float = 1.0        # this patch's part of the view's style weight (patches sum to 1)
    region: int = 0           # whose style targets it is compared with (stylization/regions.py)

    def to(self, device: str | torch.device) -> "LevelPatch":
        return LevelPatch(self.level, self.box, self.weight.to(device), self.uv.to(device),
                          self.footprint.to(device), self.mask.to(device), self.share, self.region)

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


def level_of_depth(depth: torch.Tensor, reference: float, heights: Sequence[int]) -> torch.Tensor:
    """Continuous pyramid level wanted by each depth (module docstring), clipped to the pyramid
    whose level heights (coarsest first) are `heights`."""
    # log(h*(d) / h_0), and each level's log(h_k / h_0): the level is the piecewise-linear position
    # of the first among the second, summed segment by segment (each contributes 0..1).
    wanted = torch.log(depth.clamp_min(1e-6) / reference)
    steps = [math.log(height / heights[0]) for height in heights]
    level = torch.zeros_like(depth)
    for low, high in zip(steps, steps[1:]):
        # Two levels of one height (a scale near 1, rounded) hand over at once.
        level += ((wanted - low) / max(high - low, 1e-12)).clamp(0.0, 1.0)
    return level


def depth_weights(pyramid: ViewPyramid, level: int, reference: float, blend: float = 1.0,
                  serves: Sequence[int] = ()) -> torch.Tensor:
    """(H,W) share of each pixel of the pyramid's `level` that belongs to that level, plus the
    shares of the levels in `serves` (small levels merged into this one, see `split_by_depth`).

    `blend` is the width, in levels, of the cross-fade centred half-way between two levels: 1 is
    the plain linear interpolation, smaller values give each level more pixels of its own (and VGG
    smaller crops) at the price of a sharper hand-over.
    """
    fragments = pyramid.levels[level]
    wanted = level_of_depth(fragments.depth, reference, pyramid.heights)
    share = torch.zeros_like(wanted)
    for served in (level, *serves):
        share += ((0.5 - (wanted - served).abs()) / max(blend, 1e-6) + 0.5).clamp(0.0, 1.0)
    return share.clamp(max=1.0) * fragments.mask.to(torch.float32)


def merged_levels(areas: Sequence[float], min_share: float) -> dict[int, tuple[int, ...]]:
    """Which levels get crops, and the small levels each one also serves: a level holding less
    than `min_share` of the view's weight hands its pixels to the nearest level that holds more
    (the coarser one on a tie, which costs less), so no pixel loses its style gradient. The
    largest level is always kept."""
    total = sum(areas)
    kept = [index for index, area in enumerate(areas) if area > 0 and area >= min_share * total]
    if not kept:
        kept = [max(range(len(areas)), key=lambda index: areas[index])]
    serves: dict[int, list[int]] = {index: [] for index in kept}
    for index, area in enumerate(areas):
        if area > 0 and index not in serves:
            serves[min(kept, key=lambda k: (abs(k - index), k))].append(index)
    return {index: tuple(small) for index, small in serves.items()}


def reference_depth(pyramids: list[ViewPyramid], config: LossConfig, reference_height: int) -> float:
    """The scene-wide depth d_0 at which the coarsest level has the wanted stroke size.

    The wanted size is the one the level `reference_height` pixels high (`raster.image_height`)
    gives at the reference depth: `config.reference_depth` metres if > 0, otherwise the
    `reference_depth_quantile` of the covered depths of all views. Coarser levels below it
    (`raster.near_levels`) serve the surfaces nearer than that, which a pyramid starting at
    `reference_height` would see at its coarsest size with strokes shrinking with their depth.
    d_0 is that depth times h_0 / reference_height.

    With `config.style_extent` (strokes of one world size) the quantile depth is put at the
    pyramid's middle (in log-height) instead: pixels nearer than d_0 all fall to the coarsest level, where
    strokes shrink with their depth, so a d_0 at the median left the near half of the surface with
    strokes up to 1/s smaller; centred, the levels serve the depths on both sides of the median.
    """
    heights = pyramids[0].heights if pyramids else [reference_height]
    centre = reference_height / heights[0]
    if config.reference_depth > 0:
        return float(config.reference_depth) / centre
    if config.style_extent > 0 and config.depth_aware and pyramids:
        centre = math.sqrt(heights[-1] / heights[0])
    depths = [p.levels[0].depth[p.levels[0].mask] for p in pyramids]
    depths = torch.cat([d.reshape(-1) for d in depths]) if depths else torch.zeros(0)
    if depths.numel() == 0:
        return 1.0
    # torch.quantile refuses very large inputs; a fixed stride keeps it exact enough and deterministic.
    stride = max(1, depths.numel() // 1_000_000)
    return float(torch.quantile(depths[::stride].double(), config.reference_depth_quantile)) / centre


def split_by_depth(pyramid: ViewPyramid, config: LossConfig, reference: float,
                   face_region: torch.Tensor | None = None, skip: frozenset[int] = frozenset()) -> list[LevelPatch]:
    """The patches of one view: per used level, crops around the pixels that belong to it.
    The level geometry is the pyramid's own (its heights), not re-derived from the raster config.

    With `face_region` ((F,) region of each face), each region gets its own crops whose mask holds
    only its pixels: the others are rendered as the neutral fill, so a region's statistics (and
    gradient) come from its own pixels alone. Regions in `skip` (keep) get no patch."""
    levels = pyramid.levels if config.depth_aware else pyramid.levels[:1]
    base_height = pyramid.levels[0].height

    def level_weight(index: int, serves: Sequence[int] = ()) -> torch.Tensor:
        fragments = levels[index]
        share = depth_weights(pyramid, index, reference, config.level_blend, serves) \
            if config.depth_aware else fragments.mask.to(torch.float32)
        weight = share * angle_weight(fragments, config)
        if face_region is not None:
            for region in skip:
                weight = weight * (region_maps[index] != region)
        return weight

    region_maps = [None if face_region is None else
                   torch.where(fragments.mask, face_region[fragments.face_id.clamp_min(0)],
                               torch.full_like(fragments.face_id, -1)) for fragments in levels]
    own_weights = [level_weight(index) for index in range(len(levels))]
    # Compare levels in coarsest-level pixel units: a level-k pixel is (h_0/h_k)^2 of one.
    area = [float(weight.sum()) * (base_height / fragments.height) ** 2
            for weight, fragments in zip(own_weights, levels)]
    patches: list[LevelPatch] = []
    if sum(area) <= 0:
        return patches
    # A level with few pixels still costs a VGG pass over the bounding boxes of its scattered
    # pixels: merged into the nearest kept level, those pixels are seen at its size instead.
    for index, serves in sorted(merged_levels(area, config.min_level_share).items()):
        fragments = levels[index]
        weight = level_weight(index, serves) if serves else own_weights[index]
        pixel_area = (base_height / fragments.height) ** 2
        region_map = region_maps[index]
        for region, region_weight, covered in _by_region(weight, fragments.mask, region_map):
            for crop in active_boxes(region_weight > 0, config.patch_margin, config.min_patch_size):
                y0, y1, x0, x1 = crop.box
                # Weight only the crop's own pixels: margins overlapping a neighbour's core are context.
                own = torch.zeros_like(region_weight)
                own[crop.core[0]:crop.core[1], crop.core[2]:crop.core[3]] = 1.0
                crop_weight = (region_weight * own)[y0:y1, x0:x1]
                patches.append(LevelPatch(
                    level=index, box=crop.box,
                    weight=crop_weight.contiguous()[None, None],
                    uv=fragments.uv[y0:y1, x0:x1].contiguous(),
                    footprint=fragments.footprint[y0:y1, x0:x1].contiguous(),
                    mask=covered[y0:y1, x0:x1].contiguous(),
                    share=float(crop_weight.sum()) * pixel_area, region=region))
    kept = sum(patch.share for patch in patches)
    for patch in patches:
        patch.share /= kept
    return patches


def _by_region(weight: torch.Tensor, mask: torch.Tensor, region_map: torch.Tensor | None):
    """(region, its weight, its covered pixels) per region with weight in the level; one entry,
    region 0 with everything, without regions."""
    if region_map is None:
        yield 0, weight, mask
        return
    for region in torch.unique(region_map[weight > 0]).tolist():
        inside = region_map == region
        yield int(region), weight * inside, mask & inside


@dataclass(frozen=True)
class Crop:
    """A VGG crop: `box` (with context margin) around the active pixels of its `core` rectangle.

    Cores partition the image, so every active pixel belongs to exactly one crop; the margins of
    neighbouring crops may overlap, but there they only give context, not weight."""
    box: Box
    core: Box


CELL = 8   # pixels per occupancy cell when searching for crops


def active_boxes(active: torch.Tensor, margin: int, min_size: int, max_depth: int = 3,
                 min_saving: float = 0.15) -> list[Crop]:
    """Crops covering the active pixels of an (H,W) mask with little inactive area.

    Starting from the bounding box, a box is cut in two (guillotine cut across rows or columns, at
    the place that leaves the least total crop area, margins included) when that saves at least
    `min_saving` of its area, up to `max_depth` cuts deep: far pixels often form a band across the
    middle of the image and near ones a frame around it, whose single bounding box is the whole
    image. Crops grow to at least `min_size` (VGG's deepest style layer is 1/16 resolution).
    """
    active_np = active.cpu().numpy().astype(bool)
    height, width = active_np.shape
    if not active_np.any():
        return []
    grid_h, grid_w = -(-height // CELL), -(-width // CELL)
    padded = np.zeros((grid_h * CELL, grid_w * CELL), dtype=bool)
    padded[:height, :width] = active_np
    cells = padded.reshape(grid_h, CELL, grid_w, CELL).any(axis=(1, 3))

    def crop_area(box_cells: tuple[int, int, int, int]) -> float:
        y0, y1, x0, x1 = box_cells
        return (min((y1 - y0) * CELL + 2 * margin, height)) * (min((x1 - x0) * CELL + 2 * margin, width))

    def bounds(y0: int, y1: int, x0: int, x1: int) -> tuple[int, int, int, int] | None:
        region = cells[y0:y1, x0:x1]
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        if rows.size == 0:
            return None
        return y0 + rows[0], y0 + rows[-1] + 1, x0 + cols[0], x0 + cols[-1] + 1

    def split(core: tuple[int, int, int, int], depth: int) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
        tight = bounds(*core)
        if tight is None:
            return []
        y0, y1, x0, x1 = tight
        best_cost, best_halves = crop_area(tight), None
        for axis in (0, 1):
            low, high = (y0, y1) if axis == 0 else (x0, x1)
            for cut in range(low + 1, high):
                halves = ((core[0], cut, core[2], core[3]), (cut, core[1], core[2], core[3])) if axis == 0 \
                    else ((core[0], core[1], core[2], cut), (core[0], core[1], cut, core[3]))
                cost = sum(crop_area(b) for b in map(lambda h: bounds(*h), halves) if b is not None)
                if cost < best_cost:
                    best_cost, best_halves = cost, halves
        if depth >= max_depth or best_halves is None or best_cost > (1 - min_saving) * crop_area(tight):
            return [(core, tight)]
        return [piece for half in best_halves for piece in split(half, depth + 1)]

    crops = []
    for core, tight in split((0, grid_h, 0, grid_w), 0):
        y0, y1 = _grow(tight[0] * CELL - margin, min(tight[1] * CELL, height) + margin, min_size, height)
        x0, x1 = _grow(tight[2] * CELL - margin, min(tight[3] * CELL, width) + margin, min_size, width)
        core_px = (core[0] * CELL, min(core[1] * CELL, height), core[2] * CELL, min(core[3] * CELL, width))
        crops.append(Crop(box=(y0, y1, x0, x1), core=core_px))
    return crops


def _grow(start: int, stop: int, min_size: int, limit: int) -> tuple[int, int]:
    """Clip [start, stop) to [0, limit) after widening it symmetrically to at least `min_size`."""
    size = min(max(stop - start, min_size), limit)
    centre = (start + stop) / 2
    start = int(round(centre - size / 2))
    start = min(max(start, 0), limit - size)
    return int(start), int(start + size)
