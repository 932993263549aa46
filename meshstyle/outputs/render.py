"""Images of a textured mesh along cameras: views, contact sheets, fly-through videos.

Per view, in data-flow order:

1. which face each pixel sees (`raster.Rasterizer` casts rays, a few small views per call), then
   the exact hit on that face and the four fields drawing needs, `ViewSamples` (UV, texel
   footprint, view angle, coverage), in compiled per-pixel loops;
2. `PackedMipmap.draw`: mip-mapped lookup through the footprint (no shimmering or moire on
   distant floors), optional headlight Lambert shading, background where no surface was hit;
   the same colours as `texture.sample` + `shade`, the differentiable path of the optimiser;
3. with supersampling, the view was rendered k times larger and k x k blocks are averaged
   (anti-aliased silhouettes).

What a view sees depends only on the geometry and the camera, never on the texture, so the face
ids (4 bytes per pixel) are cached on disk keyed by their fingerprints: rendering a trajectory
again (another texture, the content beside the stylized view, a second video) skips ray casting
and does not even build the ray-casting scene. The cache keeps the most recently used views
within a size budget.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np
import torch

from meshstyle.common.cache import budget_mb, cache_failed, prune, touch, usable_cache_dir
from meshstyle.common.cache import fingerprint
from meshstyle.geometry.camera import Camera
from meshstyle.raster.fragments import Fragments, ViewSamples
from meshstyle.common.io import atomic_path, to_uint8, write_image
from meshstyle.common.kernels import parallel_kernel, prange
from meshstyle.common.progress import progress
from meshstyle.raster import rasterizer as raster
from meshstyle.raster.rasterizer import Rasterizer
from meshstyle.geometry.scene import TexturedMesh
from meshstyle.stylization.texture import mip_level, mip_levels, mip_pyramid, sample

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ViewSamples", "ViewRenderer", "PackedMipmap", "render_views", "render_fragments",
           "shade", "psnr", "write_views", "write_video", "write_views_and_video", "contact_sheet", "write_image"]

# Headlight Lambert shading: a light at the camera makes the diffuse term the view angle's cosine;
# the ambient share keeps grazing surfaces readable instead of black.
AMBIENT = 0.35
# Bumped whenever what the render cache stores changes (raster's own format is part of the key too).
CACHE_FORMAT = "view-faces-1"
# Disk budget of the render cache (a 640x480 view takes 1.2 MB); least recently used views go first.
CACHE_BUDGET_MB = budget_mb("render")

Colour = tuple[float, float, float]


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
        self._cache_root = cache_dir
        self._cache_dir = usable_cache_dir("render", cache_dir) if cache else None
        cache = self._cache_dir is not None
        self._mesh_key = (fingerprint(CACHE_FORMAT, raster.CACHE_FORMAT, np.asarray(mesh.vertices, dtype=np.float64),
                                      np.asarray(mesh.faces, dtype=np.int64), np.asarray(mesh.uv, dtype=np.float32))
                          if cache else "")

    def samples(self, cameras: Sequence[Camera]) -> list[ViewSamples]:
        """Each camera's samples: from the disk cache where this geometry was seen from it before,
        the others ray-cast (small views several per call)."""
        return list(self.stream_samples(cameras))

    def stream_samples(self, cameras: Sequence[Camera]) -> Iterator[ViewSamples]:
        """`samples`, one view at a time, in order (small views are cast several per call).

        No casting ahead on a worker thread: open3d's `cast_rays` holds the GIL, and numpy work
        beside it ran 25x slower (measured), so views are cast and shaded in turn.
        """
        for group in raster.ray_batches(cameras):
            for camera, face_id in zip(group, self._seen_faces(group)):
                yield raster.shade_samples(self._rasterizer(), camera, face_id)

    def _seen_faces(self, cameras: Sequence[Camera]) -> list[np.ndarray]:
        """The face each pixel of each camera sees: from the cache, or cast (the cameras that
        missed together) and then cached. Fresh and cached views go through the same
        `raster.shade_samples`, so a second render is bit-identical to the first."""
        paths = [self._cache_path(camera) for camera in cameras]
        found = [self._cached(path, camera) for path, camera in zip(paths, cameras)]
        missing = [index for index, faces in enumerate(found) if faces is None]
        self.cache_hits += len(cameras) - len(missing)
        self.cache_misses += len(missing)
        if missing:
            cast = self._rasterizer().cast_cameras([cameras[index] for index in missing])
            for index, hits in zip(missing, cast):
                found[index] = hits.face_id
                if paths[index] is not None and self._cache_dir is not None:
                    try:
                        with atomic_path(paths[index]) as tmp, open(tmp, "wb") as stream:
                            np.save(stream, hits.face_id)
                    except OSError as exc:  # read-only or full cache: render on without one
                        cache_failed(exc, self._cache_root)
                        self._cache_dir = None
        return found

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
        rendered = [camera.scaled(camera.height * supersample) if supersample > 1 else camera for camera in cameras]
        bar = progress(total=len(cameras), desc="render", unit="frame")
        try:
            for view in self.stream_samples(rendered):
                image = mipmap.draw(view, shading=shading, background=background, mip=mip)
                if supersample > 1:
                    image = _block_mean(image, supersample)
                bar.update(1)
                yield image
        finally:
            bar.close()
            self.prune_cache()

    def prune_cache(self, budget_mb: float | None = None) -> None:
        """Delete the least recently used cached views beyond the size budget (long videos add up)."""
        if self._cache_dir is None:
            return
        try:
            self._prune(budget_mb)
        except OSError as exc:
            cache_failed(exc, self._cache_root)

    def _prune(self, budget_mb: float) -> None:
        for stale in self._cache_dir.glob("*.npz"):   # per-pixel samples of the older cache format
            stale.unlink(missing_ok=True)
        prune(self._cache_dir, CACHE_BUDGET_MB if budget_mb is None else budget_mb)

    def _cache_path(self, camera: Camera) -> Path | None:
        if self._cache_dir is None:
            return None
        key = fingerprint(self._mesh_key, np.asarray(camera.K, dtype=np.float64),
                          np.asarray(camera.cam_to_world, dtype=np.float64), camera.width, camera.height)
        return self._cache_dir / f"{key}.npy"

    def _mipmap_of(self, texture: np.ndarray | torch.Tensor) -> "PackedMipmap":
        """The texture's packed mip levels, kept while the same texture object is rendered again."""
        if self._mipmap is None or self._mipmap[0] is not texture:
            self._mipmap = (texture, PackedMipmap(_as_chw(texture)))
        return self._mipmap[1]

    def _cached(self, path: Path | None, camera: Camera) -> np.ndarray | None:
        """The cached face ids of one view, or None; a damaged or foreign entry is deleted and
        recomputed, never trusted."""
        if path is None or self._cache_dir is None or not path.is_file():
            return None
        try:
            faces = np.load(path, allow_pickle=False)
            valid = (faces.dtype == np.int32 and faces.shape == (camera.width * camera.height,)
                     and (faces.size == 0 or (int(faces.max()) < len(self.mesh.faces) and int(faces.min()) >= -1)))
        except (OSError, ValueError, EOFError):
            valid = False
        if not valid:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None
        touch(path)  # recently used entries survive pruning
        return faces

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


def shade(texture: torch.Tensor, views: ViewSamples, *, shading: bool = False,
          background: Colour = (1.0, 1.0, 1.0), mip: bool = True) -> torch.Tensor:
    """(N,3,H,W) images of `texture` (3,H,W) through N stacked views, differentiable in the texture:
    `texture.sample`, optional headlight, background. `PackedMipmap.draw` gives the same image for
    rendering, where one fixed texture serves many views."""
    colour = sample(texture, views.uv, footprint=views.footprint if mip else None, mask=views.mask)
    if shading:
        colour = colour * (AMBIENT + (1.0 - AMBIENT) * views.cos_angle.clamp(0.0, 1.0)).unsqueeze(1)
    if bool(views.mask.all()):    # inside a room every pixel sees a surface
        return colour
    backdrop = torch.tensor(background, dtype=colour.dtype).view(1, 3, 1, 1)
    return torch.where(views.mask.unsqueeze(1), colour, backdrop)


class PackedMipmap:
    """Every mip level of one texture packed into one image, drawn into views by a compiled loop.

    `texture.sample` reads a different mip level per pixel by sorting the pixels by level and
    calling `grid_sample` per level (it must stay differentiable for the optimiser). Rendering one
    fixed texture into many views instead makes one pass over the pixels that reads the two levels
    each pixel blends, with no sort, per-level grids or colour images between steps.
    Level 0 sits at the left and the coarser levels are stacked in a column to its right, each with
    a one-texel border repeating its edge, so a bilinear read never needs a bounds check. Same
    pyramid (`texture.mip_pyramid`), level rule (`texture.mip_level`) and conventions as
    `texture.sample` (texel centres at (i + 0.5) / size, edge texels repeat beyond [0, 1]): tests
    compare the two.
    """

    def __init__(self, texture: torch.Tensor):
        channels, height, width = texture.shape
        if channels != 3:
            raise ValueError(f"PackedMipmap draws RGB textures, got {channels} channels")
        pyramid = [level.permute(1, 2, 0).numpy() for level in
                   mip_pyramid(texture.detach().to(torch.float32), mip_levels(height, width))]
        column = width + 2
        rows = np.cumsum([0] + [level.shape[0] + 2 for level in pyramid[1:]])
        packed_height = max(height + 2, int(rows[-1]))
        packed_width = column + (pyramid[1].shape[1] + 2 if len(pyramid) > 1 else 0)
        self.texels = np.zeros((packed_height, packed_width, channels), dtype=np.float32)
        blocks = []
        for level, (x, y) in zip(pyramid, [(0, 0)] + [(column, int(row)) for row in rows[:-1]]):
            level_height, level_width = level.shape[:2]
            block = self.texels[y:y + level_height + 2, x:x + level_width + 2]
            block[1:-1, 1:-1] = level
            # Repeat the edge texels into the border (columns first, then whole rows with corners).
            block[1:-1, 0], block[1:-1, -1] = level[:, 0], level[:, -1]
            block[0], block[-1] = block[1], block[-2]
            blocks.append((x + 1, y + 1, level_width, level_height))
        self.blocks = np.array(blocks, dtype=np.int64)   # per level: first texel column, row; width, height
        self.side = max(height, width)

    @property
    def levels(self) -> int:
        return len(self.blocks)

    def draw(self, view: ViewSamples, *, shading: bool = False, background: Colour = (1.0, 1.0, 1.0),
             mip: bool = True) -> np.ndarray:
        """(H,W,C) float32 image of one view: what `shade` gives for the texture, without autograd."""
        height, width = view.mask.shape
        colours = self._lookup(view.uv.reshape(-1, 2), view.footprint if mip else None,
                               view.cos_angle.reshape(-1) if shading else None, view.mask.reshape(-1), background)
        return colours.reshape(height, width, -1)

    def sample(self, uv: torch.Tensor, footprint: torch.Tensor | None = None) -> torch.Tensor:
        """(N,C,H,W) colours at `uv` (N,H,W,2); trilinear by `footprint` (N,H,W), else bilinear."""
        views, rows, cols = uv.shape[:-1]
        colours = self._lookup(uv.reshape(-1, 2), footprint, None, None, None)
        return torch.from_numpy(colours).view(views, rows, cols, -1).permute(0, 3, 1, 2)

    def _lookup(self, uv: torch.Tensor, footprint: torch.Tensor | None, cos_angle: torch.Tensor | None,
                mask: torch.Tensor | None, background: Colour | None) -> np.ndarray:
        """(P,C) colours of P pixels, lit by `cos_angle` when given; `mask` False pixels get `background`."""
        pixels = uv.shape[0]
        if footprint is None:
            level = np.zeros(pixels, dtype=np.float32)
        else:
            level = mip_level(_numpy(footprint.reshape(-1), np.float32), self.side, self.levels)
        out = np.empty((pixels, 3), dtype=np.float32)
        _draw_pixels(self.texels, self.blocks, _numpy(uv, np.float32), level,
                     np.ones(pixels, np.bool_) if mask is None else _numpy(mask, np.bool_),
                     np.empty(0, np.float32) if cos_angle is None else _numpy(cos_angle, np.float32),
                     np.zeros(3, np.float32) if background is None else np.asarray(background, np.float32),
                     out)
        return out


def _numpy(values: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(values.detach().numpy(), dtype=dtype)


@parallel_kernel(fastmath=True)   # finite inputs only (UVs and levels are clamped) - 25% faster
def _draw_pixels(texels, blocks, uv, level, mask, cos_angle, background, out):  # pragma: no cover - compiled
    """Trilinear lookup per pixel: bilinear in the two mip levels around `level`, blended by its
    fraction; then the headlight (when `cos_angle` is given) and the background off the mesh.

    Texel positions in float64 (a 4096-texel atlas needs the bits), weights and colours in float32
    like the texture; scalar indexing only (a row view counts references from every thread).
    """
    top = blocks.shape[0] - 1
    shading = cos_angle.shape[0] > 0
    for pixel in prange(uv.shape[0]):
        if not mask[pixel]:
            out[pixel, 0], out[pixel, 1], out[pixel, 2] = background[0], background[1], background[2]
            continue
        u = min(max(uv[pixel, 0], np.float32(0.0)), np.float32(1.0))
        v = np.float32(1.0) - min(max(uv[pixel, 1], np.float32(0.0)), np.float32(1.0))   # v = 1: top row
        lower = min(np.int64(level[pixel]), top)
        blend = level[pixel] - np.float32(lower)
        light = np.float32(1.0)
        if shading:
            light = np.float32(AMBIENT) + np.float32(1.0 - AMBIENT) * min(max(cos_angle[pixel], np.float32(0.0)),
                                                                          np.float32(1.0))
        red = green = blue = np.float32(0.0)
        for read in range(2):
            weight = light * (np.float32(1.0) - blend if read == 0 else blend)
            if weight == 0.0:
                continue
            block = min(lower + read, top)
            # Texel centres at (i + 0.5) / size; the border makes both neighbours exist.
            col = blocks[block, 0] + np.float64(u) * blocks[block, 2] - 0.5
            row = blocks[block, 1] + np.float64(v) * blocks[block, 3] - 0.5
            col0, row0 = np.int64(col), np.int64(row)   # never negative: truncation is floor
            right, down = np.float32(col - col0), np.float32(row - row0)
            w11 = weight * right * down
            w01 = weight * right - w11
            w10 = weight * down - w11
            w00 = weight - w01 - w10 - w11
            red += (w00 * texels[row0, col0, 0] + w01 * texels[row0, col0 + 1, 0]
                    + w10 * texels[row0 + 1, col0, 0] + w11 * texels[row0 + 1, col0 + 1, 0])
            green += (w00 * texels[row0, col0, 1] + w01 * texels[row0, col0 + 1, 1]
                      + w10 * texels[row0 + 1, col0, 1] + w11 * texels[row0 + 1, col0 + 1, 1])
            blue += (w00 * texels[row0, col0, 2] + w01 * texels[row0, col0 + 1, 2]
                     + w10 * texels[row0 + 1, col0, 2] + w11 * texels[row0 + 1, col0 + 1, 2])
        out[pixel, 0], out[pixel, 1], out[pixel, 2] = red, green, blue


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
    even sizes, and imageio's default would rescale every frame to multiples of 16 (docs/TRAPS.md).
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


def write_column_sheet(path: str | Path, columns: Sequence[tuple[str, Sequence[np.ndarray]]],
                       *, gap: int = 6, label: int = 18, quality: int = 85) -> None:
    """A comparison sheet: one titled column per setting, the same views down every column.

    `columns` holds (title, [(H,W,3) float images in [0,1]]); all images share one size. Written
    atomically, so a sheet is either the new one or the old one (scripts' before/after sheets)."""
    from PIL import Image, ImageDraw

    height, width = columns[0][1][0].shape[:2]
    rows = max(len(images) for _, images in columns)
    sheet = Image.new("RGB", (len(columns) * (width + gap) + gap, label + rows * (height + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (title, images) in enumerate(columns):
        x = gap + column * (width + gap)
        draw.text((x, 3), title, fill="black")
        for row, image in enumerate(images):
            sheet.paste(Image.fromarray(to_uint8(image)), (x, label + gap + row * (height + gap)))
    with atomic_path(path) as tmp:
        sheet.save(tmp, quality=quality)


def _write_view(out_dir: Path, index: int, frame: np.ndarray) -> Path:
    path = out_dir / f"{index:04d}.png"
    write_image(path, frame)
    return path


def _pad_even(pixels: np.ndarray) -> np.ndarray:
    pad_rows, pad_cols = pixels.shape[0] % 2, pixels.shape[1] % 2
    if not (pad_rows or pad_cols):
        return pixels
    return np.pad(pixels, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")


def _block_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Average of each size x size block of an (H,W,C) image (a ragged last row / column dropped)."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    blocks = image[:rows * size, :cols * size].reshape(rows, size, cols, size, -1)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


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
