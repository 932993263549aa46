"""`stylize()`: scene + style image -> stylized texture, one stage after another.

atlas + initial texture -> cameras (training + holdout) -> view pyramids (disk-cached) -> style
targets and per-view patches with content targets -> optimisation -> `StylizeResult`.
Every random choice draws from generators seeded by `config.seed`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from meshstyle.atlas.unwrap import Atlas, atlas_info, bake_texture, make_atlas, rasterize_atlas
from meshstyle.views.cameras import for_scene, view_coverage
from meshstyle.common import distributed
from meshstyle.config import StylizeConfig
from meshstyle.errors import InputError
from meshstyle.raster.fragments import ViewPyramid
from meshstyle.stylize.losses import match_colors, style_targets
from meshstyle.stylize.paint import ColorTransform, normalized_style_features, palette_transform
from meshstyle.stylize.optimize import (Objective, PatchTarget, TrainView, evaluate_views, load_checkpoint, optimize,
                       render_patch, steps_per_second)
from meshstyle.stylize.patches import LevelPatch, reference_depth, split_by_depth
from meshstyle.common.progress import log, progress
from meshstyle.raster.rasterizer import Rasterizer, view_pyramids
from meshstyle.outputs.run_folder import StylizeResult
from meshstyle.atlas.texture_size import default_texture_size
from meshstyle.stylize.photo_targets import content_target
from meshstyle.views.frame_selection import select_frames
from meshstyle.geometry.scene import Appearance, Photo, Scene, TexturedMesh, View
from meshstyle.inputs.styles import load_style, resize_long_side
from meshstyle.stylize.texture import LaplacianTexture
from meshstyle.stylize.vgg import load_vgg, native_bfloat16

CHECKPOINT_NAME = "checkpoint.pt"
ASPECT = 4 / 3   # width / height of generated cameras


def quick_config() -> StylizeConfig:
    """A smoke-test run (`meshstyle demo --quick`): under a minute on 2 cores, style still visible."""
    config = StylizeConfig()
    config.cameras.views = 8
    config.cameras.holdout = 2
    config.raster.image_height = 96
    config.raster.levels = 2
    config.texture.size = 512
    config.loss.style_scales = (1.0,)
    config.loss.style_size = 192
    config.optim.iters = 40
    return config


@dataclass
class Prepared:
    """Everything the optimisation needs, built once per run by `prepare`."""
    atlas: Atlas
    initial: np.ndarray               # (H,W,3) float32 initial texture (the mesh's own colours)
    start: np.ndarray                 # (H,W,3) float32 where the optimisation starts (after the palette step)
    train: list[View]
    holdout: list[View]
    views: list[TrainView]
    holdout_views: list[TrainView]
    objective: Objective
    style_image: np.ndarray           # (H,W,3) as used for the style targets
    info: dict[str, Any]
    timings: dict[str, float]

    @property
    def initial_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.initial).permute(2, 0, 1).contiguous()

    @property
    def start_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.start).permute(2, 0, 1).contiguous()


def stylize(scene: Scene | None, style: str | Path | np.ndarray, config: StylizeConfig | None = None,
            out_dir: Path | None = None, resume: bool = False) -> StylizeResult:
    """Repaint `scene`'s texture in the style of `style` (image file, built-in name or (H,W,3) array).

    Under torchrun every rank calls this and gets the same result (distributed.py): rank 0 prepares
    and checkpoints, and only rank 0 needs `scene` (the others may pass None); `result.save` writes
    on rank 0 only."""
    config = (config if config is not None else StylizeConfig()).validate()
    world = distributed.world(config.device)
    checkpoint_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    if resume and checkpoint_path is None:
        raise InputError(None, "resume needs the run folder (out_dir) that holds checkpoint.pt")
    resume_state = distributed.run_on_main(world, lambda: load_checkpoint(checkpoint_path)) if resume else None
    prepared, scene = prepare_shared(world, scene, style, config)
    timings = prepared.timings
    device = torch.device(config.device)
    optim = distributed.scale_schedule(config.optim, world.size)
    with stage("optimise", timings):
        texture = LaplacianTexture(prepared.start_tensor.to(device), config.texture.pyramid_levels)
        outcome = optimize(texture, prepared.views, prepared.objective, optim, config.seed,
                           checkpoint_path=checkpoint_path if world.is_main else None, resume=resume_state,
                           world=world)
    info = dict(prepared.info)
    info["steps"] = len(outcome.history)
    info["steps_per_s"] = steps_per_second(outcome.history[len(outcome.history) - outcome.steps_run:])
    if world.enabled:
        info["distributed"] = {**world.info(), "steps": optim.iters,
                               "views_per_step": max(1, min(optim.views_per_step, len(prepared.views))) * world.size}

    def holdout_losses() -> dict[str, Any]:
        # Style loss on views never trained on: how well the style carries over to new viewpoints.
        before = evaluate_views(prepared.initial_tensor.to(device), prepared.holdout_views, prepared.objective)
        after = evaluate_views(outcome.texture, prepared.holdout_views, prepared.objective)
        return {"holdout_style_loss": {"initial": before.style, "final": after.style},
                "holdout_content_loss": {"initial": before.content, "final": after.content}}

    if prepared.holdout_views:
        info.update(distributed.run_on_main(world, holdout_losses))
    stylized = outcome.texture.permute(1, 2, 0).cpu().numpy().astype(np.float32)
    atlas = prepared.atlas
    return StylizeResult(
        mesh=TexturedMesh(scene.vertices, scene.faces, atlas.uv, stylized),
        original=TexturedMesh(scene.vertices, scene.faces, atlas.uv, prepared.initial),
        views=prepared.train, holdout_views=prepared.holdout, style_image=prepared.style_image,
        config=config, scene=scene, history=outcome.history, timings=timings, info=info,
        checkpoint=outcome.checkpoint)


def prepare_shared(world: distributed.World, scene: Scene | None, style: str | Path | np.ndarray,
                   config: StylizeConfig) -> tuple[Prepared, Scene]:
    """`prepare` on rank 0, broadcast to the other ranks (distributed.py says why not the disk
    cache); each rank builds its own VGG. Returns what the rank needs: the prepared run and the
    scene's geometry (its photos stay on rank 0, whose content crops travel in the views)."""
    if not world.enabled:
        return prepare(scene, style, config), scene
    made: dict[str, Prepared] = {}

    def build() -> None:
        made["prepared"] = prepare(scene, style, config)

    distributed.run_on_main(world, build, share_result=False)   # an input error stops every rank
    if world.is_main:
        prepared = made["prepared"]
        shipped = dataclasses.replace(prepared, objective=dataclasses.replace(prepared.objective, vgg=None))
        distributed.broadcast_object(world, (shipped, dataclasses.replace(scene, photos=[], appearance=Appearance())))
        return prepared, scene
    shipped, geometry = distributed.broadcast_object(world, None)
    configure_torch(config)
    device = torch.device(config.device)
    prepared = distributed.to_device(shipped, device)
    prepared.objective.vgg = load_vgg(device=device, dtype=vgg_dtype(config), channels_last=config.optim.channels_last)
    return prepared, geometry


def prepare(scene: Scene, style: str | Path | np.ndarray, config: StylizeConfig) -> Prepared:
    """Atlas, cameras, view pyramids, style targets and per-view patches: all but the optimisation."""
    config.validate()
    configure_torch(config)
    device = torch.device(config.device)
    content_source = content_source_for(scene, config)
    timings: dict[str, float] = {}
    with stage("atlas", timings):
        size = config.texture.size or default_texture_size(scene, config.texture.texels_per_metre)
        atlas = make_atlas(scene, size, config.scene)
        initial = np.ascontiguousarray(bake_texture(scene, atlas, size), dtype=np.float32)

    with stage("cameras", timings):
        rasterizer = Rasterizer(scene.vertices, scene.faces, atlas.uv)
        rng = np.random.default_rng(config.seed)
        candidates = choose_views(scene, rasterizer, config, rng)
        coverage = view_coverage([view.camera for view in candidates], rasterizer)
        kept = [view for view, share in zip(candidates, coverage) if share >= config.cameras.min_coverage]
        dropped = len(candidates) - len(kept)
        if not kept:
            raise InputError(scene.source or scene.name,
                             f"no camera view covers {config.cameras.min_coverage:.0%} of its image with the mesh")
        train, holdout = split_holdout(kept, config.cameras.holdout, rng)

    with stage("raster", timings):
        heights = pyramid_heights(config)
        pyramids = view_pyramids(rasterizer, [view.camera for view in train], heights,
                                 cache_dir=config.raster.cache_dir)
        holdout_pyramids = view_pyramids(rasterizer, [view.camera for view in holdout], heights,
                                         cache_dir=config.raster.cache_dir)

    with stage("targets", timings):
        vgg = load_vgg(device=device, dtype=vgg_dtype(config), channels_last=config.optim.channels_last)
        style_image = torch.from_numpy(style_pixels(style, config.loss.style_size)).permute(2, 0, 1)
        initial_tensor = torch.from_numpy(initial).permute(2, 0, 1).contiguous()
        palette = ColorTransform.identity()
        if config.loss.preserve_color:
            style_image = match_colors(style_image, initial_tensor)
        elif config.loss.palette:
            sample, used = texture_sample(initial_tensor, atlas.uv)
            palette = palette_transform(sample, style_image, used, strength=min(1.0, config.loss.style_strength))
            initial_tensor = palette(initial_tensor)
        start = np.ascontiguousarray(initial_tensor.permute(1, 2, 0).numpy(), dtype=np.float32)
        targets = style_targets(vgg, style_image.to(device), config.loss.style_layers,
                                config.loss.style_scales, config.loss.statistic)
        objective = Objective(vgg=vgg, style=targets, loss=config.loss, regularizer=config.texture.regularizer,
                              nnfm=nnfm_targets(vgg, style_image.to(device), config))
        depth_reference = reference_depth(pyramids, config.loss)
        views = [train_view(pyramid, initial_tensor, view.photo, content_source, config, depth_reference, palette)
                 for view, pyramid in zip(train, progress(pyramids, desc="patches", unit="view"))]
        views = [view.to(device) for view in views if view.targets]
        if not views:
            raise InputError(scene.source or scene.name, "no training view has pixels to stylize")
        holdout_views = [train_view(pyramid, initial_tensor, view.photo, content_source, config,
                                    depth_reference, palette) for view, pyramid in zip(holdout, holdout_pyramids)]
        holdout_views = [view.to(device) for view in holdout_views if view.targets]

    patches = [t.patch for view in views for t in view.targets]
    info = {
        "atlas": atlas_info(atlas),
        "texture_size": size,
        "views": len(train),
        "holdout_views": len(holdout),
        "dropped_views": dropped,
        "coverage": float(np.mean([float(p.levels[0].mask.float().mean()) for p in pyramids])),
        "content_target": content_source,
        "reference_depth_m": depth_reference,
        "patches_per_view": len(patches) / len(views),
        "patch_pixels_per_view": sum(p.pixels for p in patches) / len(views),
        "level_pixels": {str(k): sum(p.pixels for p in patches if p.level == k) for k in range(len(heights))},
    }
    return Prepared(atlas=atlas, initial=initial, start=start, train=train, holdout=holdout, views=views,
                    holdout_views=holdout_views, objective=objective,
                    style_image=style_image.permute(1, 2, 0).cpu().numpy(), info=info, timings=timings)


def style_pixels(style: str | Path | np.ndarray, size: int) -> np.ndarray:
    """(H,W,3) float32 style image with long side `size`, from a file, a built-in name or an array."""
    if isinstance(style, np.ndarray):
        if style.ndim != 3 or style.shape[2] != 3:
            raise InputError("style", f"expected an (H,W,3) image array, got shape {style.shape}")
        pixels = style.astype(np.float32) / (255.0 if style.dtype == np.uint8 else 1.0)
        return np.ascontiguousarray(resize_long_side(np.clip(pixels, 0, 1), size, source="style"))
    return np.ascontiguousarray(load_style(style, size=size), dtype=np.float32)


def choose_views(scene: Scene, rasterizer: Rasterizer, config: StylizeConfig,
                 rng: np.random.Generator) -> list[View]:
    """Training + holdout views; a scan's views carry the photo taken from them."""
    wanted = config.cameras.views + config.cameras.holdout
    kind = config.cameras.kind
    if scene.photos and kind in ("auto", "poses"):
        photos, _report = select_frames(scene.photos, rasterizer, wanted, rng)
        return [View(photo.camera, photo) for photo in photos]
    height = config.raster.image_height
    cameras = for_scene(scene, wanted, config.cameras, rng, int(round(height * ASPECT)), height, rasterizer=rasterizer)
    return [View(camera) for camera in cameras]


def content_source_for(scene: Scene, config: StylizeConfig) -> str:
    """"photo" (the scan's frames), "mesh" (the initial texture rendered) or "none" (style only)."""
    choice = config.loss.content_target
    if config.loss.style_only:
        return "none"
    if choice == "photo" and not scene.photos:
        raise InputError(scene.source or scene.name, "loss.content_target = 'photo' needs a scan with photos")
    return "photo" if choice in ("auto", "photo") and scene.photos else "mesh"


def train_view(pyramid: ViewPyramid, initial: torch.Tensor, photo: Photo | None, content_source: str,
               config: StylizeConfig, depth_reference: float,
               palette: ColorTransform | None = None) -> TrainView:
    """A view's depth-split patches, each with the crop of the image it should still resemble.

    `initial` is the texture the optimisation starts from (after the palette step); photos go
    through the same `palette` map, so the content loss keeps structure, not the original colours.
    """
    patches = split_by_depth(pyramid, config.loss, depth_reference)
    if content_source == "none":
        return TrainView([PatchTarget(patch, None, None) for patch in patches])
    if content_source == "photo" and photo is not None:
        level_targets = {}
        for level in sorted({patch.level for patch in patches}):
            fragments = pyramid.levels[level]
            camera = photo.camera.scaled(fragments.height)
            image, valid = content_target(photo, camera, fragments)
            level_targets[level] = (palette(image) if palette is not None else image), valid
        targets = []
        for patch in patches:
            image, valid = level_targets[patch.level]
            y0, y1, x0, x1 = patch.box
            targets.append(PatchTarget(patch, image[:, y0:y1, x0:x1].contiguous(),
                                       valid[y0:y1, x0:x1].to(torch.float32)[None, None].contiguous()))
        return TrainView(targets)
    return TrainView([PatchTarget(patch, *mesh_content(initial, patch)) for patch in patches])


NNFM_STYLE_POINTS = 4096   # style feature vectors per NNFM layer searched for nearest neighbours
PALETTE_STATS_SIZE = 512   # texels per side at which the palette step measures the texture's colours


def texture_sample(texture: torch.Tensor, uv: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The texture (3,h,w) at most PALETTE_STATS_SIZE on a side and the mask (h,w) of its used texels:
    the empty atlas space around the charts must not count in the texture's colour statistics."""
    side = min(PALETTE_STATS_SIZE, texture.shape[-1])
    small = torch.nn.functional.adaptive_avg_pool2d(texture[None], (side, side))[0]
    face_id, _ = rasterize_atlas(uv, side)
    used = torch.from_numpy(face_id >= 0)
    return small, (used if bool(used.any()) else None)


def nnfm_targets(vgg: torch.nn.Module, style_image: torch.Tensor, config: StylizeConfig) -> dict[str, torch.Tensor]:
    """Unit style feature vectors per NNFM layer, pooled over the style scales (empty when unused)."""
    loss = config.loss
    if loss.nnfm_weight <= 0 or not loss.nnfm_layers:
        return {}
    from meshstyle.stylize.losses import _rescale
    pooled: dict[str, list[torch.Tensor]] = {layer: [] for layer in loss.nnfm_layers}
    with torch.no_grad():
        for scale in loss.style_scales:
            features = vgg(_rescale(style_image[None], scale), tuple(loss.nnfm_layers))
            for layer in loss.nnfm_layers:
                pooled[layer].append(normalized_style_features(features[layer]))
    generator = torch.Generator().manual_seed(config.seed)
    targets = {}
    for layer, values in pooled.items():
        points = torch.cat(values)
        if len(points) > NNFM_STYLE_POINTS:
            # The search costs rendered x style features per patch; a random subset of the painting's
            # features keeps every kind of stroke while bounding the cost (16k -> 4k at relu3_1).
            points = points[torch.randperm(len(points), generator=generator)[:NNFM_STYLE_POINTS].to(points.device)]
        targets[layer] = points
    return targets


def mesh_content(initial: torch.Tensor, patch: LevelPatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Content target where no photo exists: the initial texture seen through the patch."""
    with torch.no_grad():
        image = render_patch(initial, patch)
    return image.contiguous(), patch.mask.to(torch.float32)[None, None]


def split_holdout(views: list[View], holdout: int, rng: np.random.Generator) -> tuple[list[View], list[View]]:
    """Hold out `holdout` views chosen at random, never trained on; at least one view is kept for training."""
    count = min(max(0, holdout), len(views) - 1)
    held = set(rng.choice(len(views), size=count, replace=False).tolist()) if count else set()
    train = [v for i, v in enumerate(views) if i not in held]
    return train, [v for i, v in enumerate(views) if i in held]


def pyramid_heights(config: StylizeConfig) -> list[int]:
    raster = config.raster
    levels = raster.levels if config.loss.depth_aware else 1
    return [int(round(raster.image_height * raster.level_scale ** k)) for k in range(max(1, levels))]


def vgg_dtype(config: StylizeConfig) -> torch.dtype:
    """The VGG's compute precision. bfloat16 autocast measured as good as float32 on demo-room
    (holdout style loss 0.45x vs 0.46x of the start, judged by the float32 network) and 1.5x
    faster per step; "auto" uses it only on CPUs with native BF16, where it is fast."""
    choice = config.optim.precision
    if choice == "auto":
        native = config.device == "cpu" and native_bfloat16()
        return torch.bfloat16 if native else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[choice]


def configure_torch(config: StylizeConfig) -> None:
    """Same seed, same texture: no randomness in the loop depends on torch's global generator,
    but seed it anyway for any library code that draws from it."""
    torch.manual_seed(config.seed)


@contextlib.contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - started
    log(f"{name}: {timings[name]:.1f} s")


# Importing meshstyle.stylize.* (above) binds the subpackage to the name `meshstyle.stylize`,
# shadowing the API function that `meshstyle.__getattr__` would otherwise return lazily; bind the
# function back so `ms.stylize(...)` works whatever was imported first.
sys.modules["meshstyle"].stylize = stylize
