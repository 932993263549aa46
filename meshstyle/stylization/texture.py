"""The texture: differentiable, mip-mapped lookups through fragment UVs, and the hierarchical
(Laplacian pyramid) texture that the optimiser repaints.

`uv_to_grid` is the one place where an OBJ-convention UV becomes a `grid_sample` coordinate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# With align_corners=False, grid coordinates -1 and +1 are the outer edges of the border texels,
# so the texel in column i has its centre at u = (i + 0.5) / W: the convention of OBJ/glTF viewers
# (Blender, three.js), so a texture looks the same here and there. align_corners=True would put
# u = 0 and u = 1 on texel centres and shift everything by half a texel.
ALIGN_CORNERS = False
# UVs just outside [0,1] (atlas gutters, rounding) repeat the border texels rather than fading to
# black, which would darken island edges.
PADDING_MODE = "border"
# Mip levels are read half a level finer than the footprint asks (a negative LOD bias, as GPUs
# allow): the tent pyramid (`mip_pyramid`) blurs a little more than the 2x2 box, and without the
# bias the paint came out softer and further from the style on the benchmark (README).
MIP_BIAS = -0.5


def uv_to_grid(uv: torch.Tensor) -> torch.Tensor:
    """(...,2) OBJ UV -> (...,2) `grid_sample` (x, y) in [-1,1] (align_corners=False).

    OBJ: (0,0) is the bottom-left corner of the image, u grows to the right, v upwards. The
    texture tensor's row 0 is the top of the image (v = 1), and grid y = -1 is row 0, hence
    y = 1 - 2v; x = 2u - 1.
    """
    return torch.stack([2.0 * uv[..., 0] - 1.0, 1.0 - 2.0 * uv[..., 1]], dim=-1)


def mip_pyramid(texture: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[texture, half size, quarter size, ...] (`levels` entries), each the previous one filtered
    with the tent [1,3,3,1]/8 per axis and halved (odd sides round up), differentiable.

    Not the plain 2x2 box: its gradient spreads a pixel's error evenly over an aligned block of
    2^k texels, so where a surface has more texels than pixels (a read from level k > 0) the
    optimiser painted a lattice of aligned texel blocks. The tent's gradient fades smoothly."""
    pyramid = [texture]
    for _ in range(levels - 1):
        pyramid.append(_tent_half(pyramid[-1]))
    return pyramid


# The tent [1,3,3,1]/8 is this [1,2,1]/4 blur followed by the 2x2 average.
_BLUR = torch.tensor([1.0, 2.0, 1.0]) / 4.0


def _tent_half(image: torch.Tensor) -> torch.Tensor:
    """(C,H,W) -> (C,ceil(H/2),ceil(W/2)): the tent-filtered half-size image, edges replicated."""
    channels, height, width = image.shape
    if height % 2 == 0 and width % 2 == 0:
        return _EvenTentHalf.apply(image)
    # Odd sides: blur, then the 2x2 average whose windows overlap where a side is odd.
    padded = F.pad(image[None], (1, 1, 1, 1), mode="replicate")
    kernel = (_BLUR[:, None] * _BLUR[None, :]).to(image)
    blurred = F.conv2d(padded, kernel.expand(channels, 1, 3, 3), groups=channels)
    return F.adaptive_avg_pool2d(blurred, ((height + 1) // 2, (width + 1) // 2))[0]


class _EvenTentHalf(torch.autograd.Function):
    """`_tent_half` of even sides: the tent's four taps per axis as strided slices, and a backward
    written out. Autograd's backward of the slices zero-filled a padded texture per tap (eight at
    2048², then the padding's backward); this one builds each axis's gradient in one pass."""

    @staticmethod
    def forward(ctx, image: torch.Tensor) -> torch.Tensor:
        return _tent_taps(_tent_taps(F.pad(image[None], (1, 1, 1, 1), mode="replicate")[0], 1), 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _tent_taps_adjoint(_tent_taps_adjoint(grad, 2), 1).contiguous()


def _tent_taps(padded: torch.Tensor, dim: int) -> torch.Tensor:
    """Halve axis `dim` (padded by one texel at each end) with the taps 1/8, 3/8, 3/8, 1/8."""
    length = padded.shape[dim] - 2
    tap = []
    for offset in range(4):   # halved texel j reads padded texels 2j .. 2j+3
        index = [slice(None)] * padded.dim()
        index[dim] = slice(offset, offset + length, 2)
        tap.append(padded[tuple(index)])
    return (tap[0] + tap[3]) * 0.125 + (tap[1] + tap[2]) * 0.375


def _tent_taps_adjoint(grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The transpose of `_tent_taps` along `dim`, with the replicated end texels folded back in:
    halved texel j read padded texels 2j..2j+3, so padded texel 2j gets 1/8 of j and 3/8 of j-1,
    and 2j+1 gets 3/8 of j and 1/8 of j-1."""
    pad = [0, 0] * (grad.dim() - 1 - dim) + [1, 1]
    padded = F.pad(grad, pad)
    count = grad.shape[dim] + 1
    current, previous = padded.narrow(dim, 1, count), padded.narrow(dim, 0, count)
    even, odd = current * 0.125 + previous * 0.375, current * 0.375 + previous * 0.125
    spread = torch.stack([even, odd], dim=dim + 1).flatten(dim, dim + 1)
    inner = spread.narrow(dim, 1, spread.shape[dim] - 2)
    inner.select(dim, 0).add_(spread.select(dim, 0))       # the replicated first texel is the first
    inner.select(dim, -1).add_(spread.select(dim, -1))     # and the last is the last
    return inner


@dataclass
class StepMips:
    """One optimisation step's mip pyramid of the painted texture, built once and read by every crop.

    `levels[0]` is the texture leaf itself; the coarser levels are detached leaves, so a crop's
    backward stops at them instead of running the pyramid's filter again (at 2048² the per-crop
    pyramid cost more than the rest of the step's texture work). `fold` sends the gradients they
    gathered back through the pyramid into `levels[0]`."""
    levels: list[torch.Tensor]
    built: list[torch.Tensor]

    @classmethod
    def of(cls, leaf: torch.Tensor) -> "StepMips":
        built = mip_pyramid(leaf, mip_levels(*leaf.shape[-2:]))
        return cls([leaf] + [level.detach().requires_grad_(True) for level in built[1:]], built)

    def fold(self) -> None:
        """Add the coarse levels' gradients into `levels[0].grad` and clear them; the pyramid's graph
        is kept for the next fold."""
        pairs = [(built, held.grad) for built, held in zip(self.built[1:], self.levels[1:]) if held.grad is not None]
        if pairs:
            torch.autograd.backward([built for built, _ in pairs], [grad for _, grad in pairs], retain_graph=True)
        for held in self.levels[1:]:
            held.grad = None


def mip_levels(height: int, width: int) -> int:
    """How many mip levels a texture has, down to a single texel."""
    return math.ceil(math.log2(max(height, width))) + 1 if max(height, width) > 1 else 1


def sample(texture: torch.Tensor, uv: torch.Tensor, footprint: torch.Tensor | None = None,
           mask: torch.Tensor | None = None, pyramid: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Colours of `texture` (C,H,W) at `uv` (H',W',2) or (N,H',W',2) -> (C,H',W') or (N,C,H',W').

    Bilinear without `footprint`. With a footprint (texture units of a side-1 texture covered by
    one pixel, as in Fragments), each pixel reads mip level log2(footprint * side) trilinearly: the
    two nearest levels of the tent-filtered pyramid (`mip_pyramid`), read half a level finer
    than the footprint (`MIP_BIAS`), so distant and oblique surfaces do not alias.
    `side` is the texture's longer side (blur rather than alias on non-square textures). Pixels
    outside `mask` are 0 and are not sampled at all, so gradients reach exactly the texels that
    the covered pixels read (through the pyramid's averages when a coarser level is read).
    `pyramid`, when given, is the texture's mip pyramid already built (`StepMips.levels`).
    """
    if texture.dim() != 3:
        raise ValueError(f"texture must be (C,H,W), got {tuple(texture.shape)}")
    batched = uv.dim() == 4
    if not batched and uv.dim() != 3:
        raise ValueError(f"uv must be (H,W,2) or (N,H,W,2), got {tuple(uv.shape)}")
    image_shape = uv.shape[:-1]
    grid = uv_to_grid(uv.reshape(-1, 2).to(texture.dtype))
    pixel = None
    if mask is not None:
        pixel = mask.reshape(-1).nonzero().squeeze(1)
        grid = grid[pixel]
    if len(grid) == 0:
        # Nothing covered: an empty slice of the texture keeps the result in the autograd graph.
        colours = texture.reshape(texture.shape[0], -1)[:, :0]
    elif footprint is None:
        colours = _bilinear(texture, grid)
    else:
        texels = footprint.reshape(-1).to(texture.dtype)
        texels = texels if pixel is None else texels[pixel]
        level = mip_level(texels, max(texture.shape[-2:]), mip_levels(*texture.shape[-2:]))
        colours = _trilinear(texture, grid, level, pyramid)
    if pixel is not None:
        colours = colours.new_zeros(texture.shape[0], math.prod(image_shape)).index_copy(1, pixel, colours)
    images = colours.reshape(texture.shape[0], *image_shape)
    return images.movedim(0, 1).contiguous() if batched else images


def mip_level(footprint: torch.Tensor | np.ndarray, side: int, levels: int) -> torch.Tensor | np.ndarray:
    """Fractional mip level of each pixel: log2 of the texels one pixel covers on a texture whose
    longer side is `side`, plus MIP_BIAS, clamped to the `levels` levels of its pyramid (0 = full
    resolution).

    A numpy footprint gets a numpy level by the same steps: the renderer's compiled loops run right
    after, and torch's OpenMP threads, still spinning after an op, halved their speed (measured).
    """
    if isinstance(footprint, np.ndarray):
        level = np.multiply(footprint, np.float32(side * 2 ** MIP_BIAS), dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log2(level, out=level)
        np.fmax(level, 0.0, out=level)             # NaN and -inf (no footprint) -> 0, as below
        return np.minimum(level, levels - 1, out=level)
    level = torch.log2(footprint * (side * 2 ** MIP_BIAS)).nan_to_num(0.0, posinf=1e9, neginf=0.0)
    return level.clamp(0.0, levels - 1)


def _bilinear(level: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(C,P) colours of one texture level at P grid points."""
    values = F.grid_sample(level[None], grid.view(1, 1, -1, 2), mode="bilinear",
                           padding_mode=PADDING_MODE, align_corners=ALIGN_CORNERS)
    return values[0, :, 0]


def _trilinear(texture: torch.Tensor, grid: torch.Tensor, level: torch.Tensor,
               pyramid: list[torch.Tensor] | None = None) -> torch.Tensor:
    """(C,P) colours blended between mip levels floor(level) and floor(level)+1.

    Pixels are sorted by their lower level so each level is read with one lookup on a contiguous
    slice: a handful of large tensor ops rather than masks per level (small ops are what a busy
    2-core machine makes slow).
    """
    lower = level.floor()
    blend = level - lower
    lower = lower.long()
    # A stable sort of small integers takes torch's radix path: ~12x faster than the default here.
    order = torch.argsort(lower, stable=True)
    counts = torch.bincount(lower).tolist()
    if pyramid is None:
        pyramid = mip_pyramid(texture, min(len(counts) + 1, mip_levels(*texture.shape[-2:])))
    sorted_grid = grid[order]
    near, far, start = [], [], 0
    for index, count in enumerate(counts):
        if count:
            points = sorted_grid[start:start + count]
            near.append(_bilinear(pyramid[index], points))
            # At the coarsest level the blend is 0: reading that level again costs nothing extra.
            far.append(_bilinear(pyramid[min(index + 1, len(pyramid) - 1)], points))
            start += count
    near, far = torch.cat(near, dim=1), torch.cat(far, dim=1)
    blended = torch.lerp(near, far, blend[order])
    unsorted = torch.empty_like(order)
    unsorted[order] = torch.arange(len(order), device=order.device)
    return blended.index_select(1, unsorted)


class LaplacianTexture(torch.nn.Module):
    """A texture stored as a Laplacian pyramid of `levels` layers (finest first, each coarser one
    half the size); the texture is the coarsest layer upsampled and added to the next, down to the
    finest. Optimising the layers lets coarse layers move large areas at once.

    Initialised so the sum equals `initial` (up to float rounding): the coarsest layer is the
    low-pass image, the finer ones the band-pass residuals. Values may leave [0,1] while optimising;
    `clamp_` pulls the summed texture back outside the autograd graph.
    """

    def __init__(self, initial: torch.Tensor, levels: int = 4):
        super().__init__()
        if initial.dim() != 3:
            raise ValueError(f"initial texture must be (C,H,W), got {tuple(initial.shape)}")
        levels = max(1, min(int(levels), mip_levels(*initial.shape[-2:])))
        with torch.no_grad():
            layers = mip_pyramid(initial.detach().float().clone(), levels)
            # Low-pass to band-pass in place, finest first (each step still reads the next level's
            # low-pass image): one texture-sized copy in all, which matters at 4096x4096.
            for fine, coarse in zip(layers, layers[1:]):
                fine.sub_(_upsample(coarse, fine.shape[-2:]))
        self.layers = torch.nn.ParameterList(torch.nn.Parameter(layer) for layer in layers)

    @property
    def levels(self) -> int:
        return len(self.layers)

    def forward(self) -> torch.Tensor:
        """(C,H,W) the summed texture."""
        texture = self.layers[-1]
        for layer in reversed(self.layers[:-1]):
            texture = layer + _upsample(texture, layer.shape[-2:])
        return texture

    def regularizer(self, weights: Sequence[float] | None = None) -> torch.Tensor:
        """Sum over layers of weight * mean squared value, finest layer first.

        Default: StyleMesh's shape [8, 4, 2, 0] for 4 layers (2^(levels-1-k), coarsest free). It
        pushes detail into coarse layers; at StyleMesh's strength it erases the fine ones
        (docs/TRAPS.md), so the run's weight on it is small or zero.
        """
        if weights is None:
            weights = default_regularizer_weights(self.levels)
        if len(weights) > self.levels:
            raise ValueError(f"{len(weights)} regularizer weights for {self.levels} layers")
        total = self.layers[0].new_zeros(())
        for weight, layer in zip(weights, self.layers):
            if weight:
                total = total + weight * layer.pow(2).mean()
        return total

    @torch.no_grad()
    def clamp_(self, low: float = 0.0, high: float = 1.0) -> None:
        """Clamp the summed texture into [low, high] by correcting the finest layer, in place and
        outside autograd (clamping inside the forward pass breaks shared lookups, docs/TRAPS.md)."""
        texture = self()
        self.layers[0].add_(texture.clamp(low, high) - texture)


def default_regularizer_weights(levels: int) -> list[float]:
    return [2.0 ** (levels - 1 - k) for k in range(levels - 1)] + [0.0]


def _upsample(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
