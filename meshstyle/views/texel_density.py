"""The atlas side the views need: texels per pixel where the loss paints them."""
from __future__ import annotations

import math

import torch

from meshstyle.atlas.texture_size import power_of_two_side
from meshstyle.raster.fragments import ViewPyramid


def view_texture_size(pyramids: list[ViewPyramid], level: int, depth_reference: float,
                      texels_per_pixel: float, smallest: int, largest: int) -> tuple[int, float]:
    """(power-of-two side in [smallest, largest], the side wanted): the power of two nearest (in
    log scale) the atlas side at which the median covered pixel of the views, painted at its depth
    level, spans `texels_per_pixel` texels, so the density lands within √2 of it. Rounding up
    instead would double the side, and add 40% to a step's time, for a scene wanting 3% more.

    A pixel at depth d is painted at the level h_0 d / d_0 high (clamped to the pyramid), where
    one pixel spans footprint * h / h_paint of a side-1 texture along its longer axis; times
    |cos| to the view ray that is about its shorter axis, the one strokes need resolved (a floor
    seen at a grazing angle still shows strokes across it). Measured on the views, not the surface
    area, so the charts the cameras come close to, and an atlas whose charts have uneven texel
    density, get the texels they are seen with: a fixed side left near walls a lattice of texel
    blocks."""
    wanted = []
    for pyramid in pyramids:
        fragments = pyramid.levels[level]
        mask = fragments.mask & (fragments.footprint > 0) & (fragments.cos_angle > 0)
        if not bool(mask.any()):
            continue
        heights = pyramid.heights
        painted = (heights[0] * fragments.depth[mask] / max(depth_reference, 1e-9)).clamp(heights[0], heights[-1])
        uv_per_pixel = fragments.footprint[mask] * fragments.cos_angle[mask] * fragments.height / painted
        wanted.append(texels_per_pixel / uv_per_pixel.clamp_min(1e-12))
    if not wanted:
        return smallest, float(smallest)
    sides = torch.cat(wanted).double()
    stride = max(1, sides.numel() // 1_000_000)   # torch.quantile refuses very large inputs
    side = float(torch.quantile(sides[::stride], 0.5))
    return power_of_two_side(side / math.sqrt(2.0), smallest, largest), side
