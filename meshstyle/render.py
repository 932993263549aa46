"""Images of a textured mesh along cameras: views, contact sheets, fly-through videos.

Per view, in data-flow order:

1. fragments (`raster.Rasterizer`, built once per mesh, casting a few views per call) -> the four
   fields shading needs, `ViewSamples` (UV, texel footprint, view angle, coverage);
2. mip-mapped lookup through the footprint (no shimmering or moire on distant floors):
   `PackedMipmap`, the same colours as `texture.sample`, built once per texture;
3. optional headlight Lambert shading, then the background where no surface was hit;
4. with supersampling, the view was rendered k times larger and k x k blocks are averaged
   (anti-aliased silhouettes).

`ViewSamples` depend only on the geometry, its atlas and the camera, never on the texture, so they
are cached on disk keyed by those fingerprints: rendering a trajectory again (another texture, the
content beside the stylized view, a second video) skips ray casting and does not even build the
ray-casting scene. The cache keeps the most recently used views within a size budget.
"""
from __future__ import annotations

import contextlib
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .cache import cache_dir as default_cache_dir
from .cache import fingerprint
from .cameras import Camera
from .fragments import Fragments
from .io import atomic_path, to_uint8, write_image
from .progress import progress
from . import raster
from .raster import Rasterizer
from .scene import TexturedMesh
from .texture import mip_level, mip_levels, mip_pyramid, sample

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ViewSamples", "ViewRenderer", "PackedMipmap", "render_views", "render_fragments",
           "shade", "psnr", "write_views", "write_video", "write_views_and_video", "contact_sheet", "write_image"]

# Headlight Lambert shading: a light at the camera makes the diffuse term the view angle's cosine;
# the ambient share keeps grazing surfaces readable instead of black.
AMBIENT = 0.35
# Rendered pixels of the views handled together (rasterized, then shaded one by one): bounds memory.
BATCH_PIXELS = 1_500_000
# Torch threads for the per-pixel work (see `elementwise_threads`).
ELEMENTWISE_THREADS = int(os.environ.get("MESHSTYLE_RENDER_THREADS", 1))
# Bumped whenever what the render cache stores changes (raster's own format is part of the key too).
CACHE_FORMAT = "view-samples-1"
# Disk budget of the render cache (a 640x480 view takes 4.6 MB); least recently used views go first.
CACHE_BUDGET_MB = float(os.environ.get("MESHSTYLE_RENDER_CACHE_MB", 2048))

Colour = tuple[float, float, float]


@dataclass
class ViewSamples:
    """What shading needs from the fragments of one view (or of N views, with a leading N axis)."""
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
        return ViewSamples(**{name: getattr(self, name)[None] for name in _SAMPLE_FIELDS})

    def save(self, path: Path) -> None:
        # The view angle only shades, so half precision is plenty; UV keeps float32 for 4k atlases.
        with atomic_path(path) as tmp, open(tmp, "wb") as stream:
            np.savez(stream, uv=self.uv.numpy(), footprint=self.footprint.numpy(),
                     cos_angle=self.cos_angle.numpy().astype(np.float16), mask=self.mask.numpy())

    @classmethod
    def load(cls, path: Path) -> "ViewSamples":
        with np.load(path) as stored:
            return cls(uv=torch.from_numpy(stored["uv"]), footprint=torch.from_numpy(stored["footprint"]),
                       cos_angle=torch.from_numpy(stored["cos_angle"].astype(np.float32)),
                       mask=torch.from_numpy(stored["mask"]))


_SAMPLE_FIELDS = ("uv", "footprint", "cos_angle", "mask")


class ViewRenderer:
    """Renders one mesh's geometry and atlas from many cameras, with any texture on that atlas.

    The ray-casting scene is built on the first view that misses the cache and then shared by all
    views; `cache_hits` / `cache_misses` count how views were obtained.
    """

    def __init__(self, mesh: TexturedMesh, *, cache: bool = True, cache_dir: str | Path | None = None):
        self.mesh = mesh
        self.cache_hits = 0
        self.cache_misses = 0
        self._raster: Rasterizer | None = None
        self._mipmap: tuple[np.ndarray | torch.Tensor, PackedMipmap] | None = None
        self._cache_dir = default_cache_dir("render", cache_dir) if cache else None
        self._mesh_key = (fingerprint(CACHE_FORMAT, raster.CACHE_FORMAT, np.asarray(mesh.vertices, dtype=np.float64),
                                      np.asarray(mesh.faces, dtype=np.int64), np.asarray(mesh.uv, dtype=np.float32))
                          if cache else "")

    def samples(self, cameras: Sequence[Camera]) -> list[ViewSamples]:
        """Each camera's samples: from the disk cache where this geometry was seen from it before,
        the others ray-cast together in one call."""
        paths = [self._cache_path(camera) for camera in cameras]
        views: list[ViewSamples | None] = [self._cached(path) for path in paths]
        missing = [index for index, view in enumerate(views) if view is None]
        self.cache_hits += len(cameras) - len(missing)
        self.cache_misses += len(missing)
        if missing:
            fragments = self._rasterizer().render_many([cameras[index] for index in missing])
            for index, view_fragments in zip(missing, fragments):
                views[index] = ViewSamples.from_fragments(view_fragments)
                if paths[index] is not None:
                    views[index].save(paths[index])
        return views

    def render(self, cameras: Sequence[Camera], *, texture: np.ndarray | torch.Tensor | None = None,
               shading: bool = False, supersample: int = 1, background: Colour = (1.0, 1.0, 1.0),
               mip: bool = True) -> Iterator[np.ndarray]:
        """Yield one (H,W,3) float32 image in [0,1] per camera, in order, at each camera's size.

        texture: (H,W,3) numpy or (3,H,W) torch on this mesh's atlas; default the mesh's own.
        supersample: render at k times the size and average k x k blocks (anti-aliased edges).
        """
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        mipmap = self._mipmap_of(self.mesh.texture if texture is None else texture)
        bar = progress(total=len(cameras), desc="render", unit="frame")
        try:
            for batch in view_batches(cameras, supersample):
                # Not across the yield: the caller's own torch work keeps its thread count.
                with elementwise_threads(), torch.no_grad():
                    views = self.samples([camera.scaled(camera.height * supersample) if supersample > 1 else camera
                                          for camera in batch])
                    # One view at a time: cameras of a file may differ in size, and with the mipmap
                    # built once a lookup has no per-call setup left to share.
                    images = []
                    for view in views:
                        image = shade(mipmap, view.batched(), shading=shading, background=background, mip=mip)
                        if supersample > 1:
                            image = F.avg_pool2d(image, supersample)
                        images.append(image[0].permute(1, 2, 0).contiguous().numpy())
                for image in images:
                    bar.update(1)
                    yield image
        finally:
            bar.close()
            self.prune_cache()

    def prune_cache(self, budget_mb: float = CACHE_BUDGET_MB) -> None:
        """Delete the least recently used cached views beyond the size budget (long videos add up)."""
        if self._cache_dir is None:
            return
        entries = []
        for path in self._cache_dir.glob("*.npz"):
            try:
                info = path.stat()
            except FileNotFoundError:  # pruned by a concurrent render
                continue
            entries.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= budget_mb * 2**20:
                break
            path.unlink(missing_ok=True)
            total -= size

    def _cache_path(self, camera: Camera) -> Path | None:
        if self._cache_dir is None:
            return None
        key = fingerprint(self._mesh_key, np.asarray(camera.K, dtype=np.float64),
                          np.asarray(camera.cam_to_world, dtype=np.float64), camera.width, camera.height)
        return self._cache_dir / f"{key}.npz"

    def _mipmap_of(self, texture: np.ndarray | torch.Tensor) -> "PackedMipmap":
        """The texture's packed mip levels, kept while the same texture object is rendered again."""
        if self._mipmap is None or self._mipmap[0] is not texture:
            self._mipmap = (texture, PackedMipmap(_as_chw(texture)))
        return self._mipmap[1]

    def _cached(self, path: Path | None) -> ViewSamples | None:
        if path is None or not path.is_file():
            return None
        try:
            view = ViewSamples.load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged entry is recomputed, never trusted
            return None
        os.utime(path)  # recently used entries survive pruning
        return view

    def _rasterizer(self) -> Rasterizer:
        if self._raster is None:
            self._raster = Rasterizer(self.mesh.vertices, self.mesh.faces, self.mesh.uv)
        return self._raster


def render_views(mesh: TexturedMesh, cameras: Sequence[Camera], *, shading: bool = False, supersample: int = 1,
                 background: Colour = (1.0, 1.0, 1.0), mip: bool = True, cache: bool = True,
                 cache_dir: str | Path | None = None) -> Iterator[np.ndarray]:
    """Stream (H,W,3) float32 images of `mesh` seen from `cameras` (see `ViewRenderer.render`)."""
    renderer = ViewRenderer(mesh, cache=cache, cache_dir=cache_dir)
    return renderer.render(cameras, shading=shading, supersample=supersample, background=background, mip=mip)


def render_fragments(texture: torch.Tensor, fragments: Fragments, *, shading: bool = False,
                     background: Colour = (1.0, 1.0, 1.0), mip: bool = True) -> torch.Tensor:
    """(3,H,W) image of `texture` (3,Ht,Wt) through one view's fragments; differentiable in the texture."""
    return shade(texture, ViewSamples.from_fragments(fragments).batched(), shading=shading,
                 background=background, mip=mip)[0]


def shade(texture: "torch.Tensor | PackedMipmap", views: ViewSamples, *, shading: bool = False,
          background: Colour = (1.0, 1.0, 1.0), mip: bool = True) -> torch.Tensor:
    """(N,3,H,W) images from N stacked views: texture lookup, optional headlight, background.

    texture: a (3,H,W) tensor, read through `texture.sample` (differentiable, for the optimiser), or a
    `PackedMipmap` of it (the same colours, faster when one texture serves many views).
    """
    footprint = views.footprint if mip else None
    if isinstance(texture, PackedMipmap):
        colour = texture.sample(views.uv, footprint)
    else:
        colour = sample(texture, views.uv, footprint=footprint, mask=views.mask)
    if shading:
        colour = colour * (AMBIENT + (1.0 - AMBIENT) * views.cos_angle.clamp(0.0, 1.0)).unsqueeze(1)
    if bool(views.mask.all()):    # inside a room every pixel sees a surface
        return colour
    backdrop = torch.tensor(background, dtype=colour.dtype).view(1, 3, 1, 1)
    return torch.where(views.mask.unsqueeze(1), colour, backdrop)


class PackedMipmap:
    """Every mip level of one texture packed into one image, for fast trilinear lookups.

    `texture.sample` reads a different mip level per pixel by sorting the pixels by level (it must
    stay differentiable and light on memory for the optimiser); for rendering one fixed texture into
    many views that sort is the largest cost. Here level 0 sits at the left and the coarser levels
    are stacked in a column to its right, each with a one-texel border repeating its edge, so each
    of the two levels a pixel blends is one `grid_sample` over all pixels at once: the pixel's UV
    maps into its level's rectangle by a per-level scale and offset. Same pyramid
    (`texture.mip_pyramid`), level choice and conventions as `texture.sample` (align_corners=False,
    border texels repeat beyond the edge): tests compare the two.
    """

    def __init__(self, texture: torch.Tensor):
        channels, height, width = texture.shape
        pyramid = mip_pyramid(texture.detach().to(torch.float32), mip_levels(height, width))
        column = width + 2
        rows = np.cumsum([0] + [level.shape[1] + 2 for level in pyramid[1:]])
        packed_height = max(height + 2, int(rows[-1]))
        packed_width = column + (pyramid[1].shape[2] + 2 if len(pyramid) > 1 else 0)
        self.image = torch.zeros((1, channels, packed_height, packed_width), dtype=torch.float32)
        mapping = []
        for level, (x, y) in zip(pyramid, [(0, 0)] + [(column, int(row)) for row in rows[:-1]]):
            level_height, level_width = level.shape[1:]
            block = self.image[0, :, y:y + level_height + 2, x:x + level_width + 2]
            block[:, 1:-1, 1:-1] = level
            # Repeat the edge texels into the border (columns first, then whole rows with corners).
            block[:, 1:-1, 0], block[:, 1:-1, -1] = level[:, :, 0], level[:, :, -1]
            block[:, 0], block[:, -1] = block[:, 1], block[:, -2]
            # UV (0..1, v up) -> grid_sample coordinates of the packed image (align_corners=False):
            # texel column i of the level is packed column x + 1 + i; v = 1 is the level's top row.
            mapping.append((2.0 * level_width / packed_width, -2.0 * level_height / packed_height,
                            2.0 * (x + 1) / packed_width - 1.0, 2.0 * (y + 1 + level_height) / packed_height - 1.0))
        self.mapping = torch.tensor(mapping, dtype=torch.float32)   # per level: scale x, y; offset x, y
        self.side = max(height, width)

    def sample(self, uv: torch.Tensor, footprint: torch.Tensor | None = None) -> torch.Tensor:
        """(N,C,H,W) colours at `uv` (N,H,W,2); trilinear by `footprint` (N,H,W), else bilinear."""
        # Within [0,1] the one-texel borders give exactly grid_sample's border padding.
        uv = uv.clamp(0.0, 1.0)
        if footprint is None:
            return self._bilinear(uv, torch.zeros(uv.shape[:-1], dtype=torch.long))
        top = len(self.mapping) - 1
        level = mip_level(footprint, self.side, len(self.mapping))
        lower = level.floor()
        lower_index = lower.long()
        near = self._bilinear(uv, lower_index)
        far = self._bilinear(uv, lower_index.add_(1).clamp_(max=top))
        return near.lerp_(far, level.sub_(lower).unsqueeze(1))

    def _bilinear(self, uv: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        mapping = F.embedding(level, self.mapping)
        grid = torch.addcmul(mapping[..., 2:], uv, mapping[..., :2])
        views, rows, cols = uv.shape[:-1]
        colours = F.grid_sample(self.image, grid.view(1, views * rows, cols, 2), mode="bilinear",
                                padding_mode="border", align_corners=False)
        return colours.view(-1, views, rows, cols).transpose(0, 1)


@contextlib.contextmanager
def elementwise_threads(threads: int = ELEMENTWISE_THREADS) -> Iterator[None]:
    """Run torch with `threads` intra-op threads inside the block, restoring the count after.

    Rendering is dozens of memory-bound element-wise ops on a few hundred thousand pixels: a second
    OpenMP thread barely helps them on an idle machine, and on a shared, busy one every op's
    hand-off between threads waits for a descheduled thread (measured on demo-room with the 2 cores
    under load ~10: 8 views at 640x480 took 14.5 s with 2 torch threads and 2.9 s with 1).
    """
    previous = torch.get_num_threads()
    if previous == threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0,1] (any layout with the same shape).

    mask: (H,W) pixels to compare, matched against the leading or trailing two axes; inf if equal.
    """
    a = torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, dtype=torch.float64)
    b = torch.as_tensor(np.asarray(b) if not torch.is_tensor(b) else b, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"psnr of images with different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    error = (a - b) ** 2
    if mask is not None:
        mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask, dtype=torch.bool)
        if tuple(error.shape[:2]) == tuple(mask.shape):      # (H,W,C)
            error = error[mask]
        elif tuple(error.shape[-2:]) == tuple(mask.shape):   # (C,H,W)
            error = error[..., mask]
        else:
            raise ValueError(f"mask {tuple(mask.shape)} does not match image {tuple(a.shape)}")
        if error.numel() == 0:
            raise ValueError("psnr over an empty mask")
    mse = float(error.mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def write_views(frames: Iterable[np.ndarray], out_dir: str | Path, start: int = 0) -> list[Path]:
    """Write frames as `out_dir/NNNN.png` (numbered from `start`), each file atomically."""
    out_dir = Path(out_dir)
    return [_write_view(out_dir, index, frame) for index, frame in enumerate(frames, start)]


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: int = 30, *, quality: int = 8) -> int:
    """Encode frames (H,W,3 float [0,1] or uint8, all one size) as H.264 MP4; returns the frame count.

    Odd sizes are padded to even ones by repeating the last row / column: libx264 with yuv420p needs
    even sizes, and imageio's default would rescale every frame to multiples of 16 (TRAPS.md).
    """
    import imageio_ffmpeg

    path = Path(path)
    count, size, writer = 0, None, None
    with atomic_path(path) as tmp:
        try:
            for frame in frames:
                pixels = _pad_even(frame if frame.dtype == np.uint8 else to_uint8(frame))
                if writer is None:
                    size = pixels.shape[:2]
                    writer = imageio_ffmpeg.write_frames(
                        str(tmp), (size[1], size[0]), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                        pix_fmt_out="yuv420p", quality=quality, macro_block_size=1,
                        output_params=["-movflags", "+faststart"])  # playable while downloading
                    writer.send(None)
                elif pixels.shape[:2] != size:
                    raise ValueError(f"{path}: frame {count} is {pixels.shape[1]}x{pixels.shape[0]}, "
                                     f"the video is {size[1]}x{size[0]}")
                writer.send(np.ascontiguousarray(pixels[..., :3]))
                count += 1
            if writer is None:
                raise ValueError(f"{path}: no frames to encode")
        finally:
            if writer is not None:
                writer.close()
    return count


def write_views_and_video(frames: Iterable[np.ndarray], out_dir: str | Path, video: str | Path,
                          fps: int = 30) -> list[Path]:
    """PNG views and an MP4 in one pass over the frames, so a long render never sits in memory."""
    out_dir = Path(out_dir)
    paths: list[Path] = []

    def written(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for index, frame in enumerate(frames):
            paths.append(_write_view(out_dir, index, frame))
            yield frame

    write_video(written(frames), video, fps=fps)
    return paths


def contact_sheet(style_image: np.ndarray, pairs: Sequence[tuple[np.ndarray, np.ndarray]], labels: bool = True,
                  *, cell_height: int = 256, pairs_per_row: int = 2, margin: int = 16) -> np.ndarray:
    """(H,W,3) float32 sheet: the style image on top, then content | stylized for each view.

    Every image is scaled to `cell_height` (aspect kept); pairs fill rows of `pairs_per_row`, left to
    right, with a narrow gap inside a pair and a wide one between pairs, on a white ground. A thin grey
    frame keeps renders with a white background apart from the ground.
    """
    from PIL import Image, ImageDraw

    if not pairs:
        raise ValueError("contact sheet needs at least one (content, stylized) pair")
    font = _label_font()
    label_height = _text_height(font) + margin // 2 if labels else 0
    style = _fit_height(style_image, cell_height)
    scaled = [(_fit_height(content, cell_height), _fit_height(stylized, cell_height)) for content, stylized in pairs]
    pair_widths = [content.width + margin // 2 + stylized.width for content, stylized in scaled]
    rows = [scaled[start:start + pairs_per_row] for start in range(0, len(scaled), pairs_per_row)]
    row_widths = [sum(pair_widths[start:start + pairs_per_row]) + 2 * margin * (len(row) - 1)
                  for start, row in zip(range(0, len(scaled), pairs_per_row), rows)]
    row_height = label_height + cell_height
    width = 2 * margin + max([style.width, *row_widths])
    height = margin + (1 + len(rows)) * (row_height + margin)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)

    def place(image: "Image.Image", x: int, y: int, label: str) -> None:
        if labels:
            draw.text((x, y), label, fill=(40, 40, 40), font=font)
        sheet.paste(image, (x, y + label_height))
        draw.rectangle((x - 1, y + label_height - 1, x + image.width, y + label_height + image.height),
                       outline=(200, 200, 200))

    place(style, margin, margin, "style")
    view = 0
    for row_index, row in enumerate(rows):
        y = margin + (1 + row_index) * (row_height + margin)
        x = margin
        for content, stylized in row:
            view += 1
            place(content, x, y, f"content {view}")
            x += content.width + margin // 2
            place(stylized, x, y, f"stylized {view}")
            x += stylized.width + 2 * margin
    return np.asarray(sheet, dtype=np.float32) / 255.0


def _write_view(out_dir: Path, index: int, frame: np.ndarray) -> Path:
    path = out_dir / f"{index:04d}.png"
    write_image(path, frame)
    return path


def _pad_even(pixels: np.ndarray) -> np.ndarray:
    pad_rows, pad_cols = pixels.shape[0] % 2, pixels.shape[1] % 2
    if not (pad_rows or pad_cols):
        return pixels
    return np.pad(pixels, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")


def view_batches(cameras: Sequence[Camera], supersample: int) -> Iterator[list[Camera]]:
    """Consecutive cameras grouped up to BATCH_PIXELS rendered pixels: one ray cast and one texture
    lookup per group."""
    batch: list[Camera] = []
    pixels = 0
    for camera in cameras:
        view_pixels = camera.width * camera.height * supersample**2
        if batch and pixels + view_pixels > BATCH_PIXELS:
            yield batch
            batch, pixels = [], 0
        batch.append(camera)
        pixels += view_pixels
    if batch:
        yield batch


def _as_chw(texture: np.ndarray | torch.Tensor) -> torch.Tensor:
    if torch.is_tensor(texture):
        return texture.detach().to(torch.float32)
    return torch.from_numpy(np.ascontiguousarray(np.asarray(texture, dtype=np.float32).transpose(2, 0, 1)))


def _fit_height(image: np.ndarray, height: int) -> "Image.Image":
    from PIL import Image

    pixels = image if image.dtype == np.uint8 else to_uint8(image)
    picture = Image.fromarray(np.ascontiguousarray(pixels[..., :3]))
    width = max(1, round(picture.width * height / picture.height))
    return picture.resize((width, height), Image.Resampling.LANCZOS)


def _label_font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=14)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_height(font) -> int:
    left, top, right, bottom = font.getbbox("Styled 0")
    return int(bottom)
