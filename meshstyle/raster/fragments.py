"""Fragments: what rasterizing one view at one image size produces, per pixel.

Like PyTorch3D's fragments, these are plain data: the rasterizer (`raster.py`) fills them once per
view and pyramid level, they are cached on disk, and the texture sampler and losses only read them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from meshstyle.geometry.camera import Camera


@dataclass
class Fragments:
    uv: torch.Tensor          # (H,W,2) float32, OBJ convention; 0 where mask is False
    face_id: torch.Tensor     # (H,W) int64, -1 where nothing was hit
    bary: torch.Tensor        # (H,W,3) float32 barycentric weights of the face's 3 corners
    depth: torch.Tensor       # (H,W) float32 z-depth in metres (camera z), 0 where mask is False
    normal: torch.Tensor      # (H,W,3) float32 world-space unit normal, facing the camera
    cos_angle: torch.Tensor   # (H,W) float32 in [0,1]: |cos| between view ray and normal
    footprint: torch.Tensor   # (H,W) float32 texels of a texture of side 1 covered by one pixel
                              # (multiply by the texture size; log2 of that is the mip level)
    mask: torch.Tensor        # (H,W) bool, pixel covers the mesh

    @property
    def height(self) -> int:
        return int(self.mask.shape[0])

    @property
    def width(self) -> int:
        return int(self.mask.shape[1])

    def to(self, device: str | torch.device) -> "Fragments":
        return Fragments(**{name: getattr(self, name).to(device) for name in FIELDS})


FIELDS = ("uv", "face_id", "bary", "depth", "normal", "cos_angle", "footprint", "mask")


@dataclass
class ViewPyramid:
    """One camera rasterized at several image heights (coarsest first)."""
    camera: Camera            # at the coarsest level's size
    levels: list[Fragments]

    @property
    def heights(self) -> list[int]:
        return [level.height for level in self.levels]


@dataclass
class ViewSamples:
    """What drawing a textured view needs, per pixel (of one view, or of N with a leading N axis):
    the subset of `Fragments` a renderer reads, which the rasterizer can also produce on its own."""
    uv: torch.Tensor          # (...,H,W,2) float32, OBJ convention; 0 off the mesh
    footprint: torch.Tensor   # (...,H,W) float32, texels of a side-1 texture per pixel (mip level)
    cos_angle: torch.Tensor   # (...,H,W) float32 in [0,1], the headlight's Lambert term
    mask: torch.Tensor        # (...,H,W) bool, pixel covers the mesh

    @classmethod
    def from_fragments(cls, fragments: Fragments) -> "ViewSamples":
        return cls(uv=fragments.uv, footprint=fragments.footprint, cos_angle=fragments.cos_angle,
                   mask=fragments.mask)

    def batched(self) -> "ViewSamples":
        """This one view with a leading axis of 1 (no copy)."""
        return ViewSamples(**{name: getattr(self, name)[None] for name in SAMPLE_FIELDS})


SAMPLE_FIELDS = ("uv", "footprint", "cos_angle", "mask")
