"""`stylize()`: scene + style image -> stylized texture, one stage after another.

atlas + initial texture -> cameras (training + holdout) -> view pyramids (disk-cached) -> style
targets and per-view patches with content targets -> optimisation -> `StylizeResult`.
Every random choice draws from generators seeded by `config.seed`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from meshstyle.atlas.seams import SeamFill, fill_seams_numpy, seam_fill_for
from meshstyle.atlas.unwrap import Atlas, atlas_info, bake_texture, fill_gutter, make_atlas, rasterize_atlas
from meshstyle.atlas.unwrap import _measured as _measured_atlas
from meshstyle.common.cache import fingerprint
from meshstyle.views.cameras import for_scene, view_coverage
from meshstyle.views.coverage import TexelPoints, propagate_paint, seen_mask, select_for_coverage, texel_points
from meshstyle.common import distributed
from meshstyle.config import LossConfig, StylizeConfig
from meshstyle.errors import InputError
from meshstyle.raster.fragments import ViewPyramid
from meshstyle.stylization.losses import blend_targets, match_colors, style_targets
from meshstyle.outputs.monitor import RunObserver, RunStart, step_hook
from meshstyle.stylization.paint import ColorTransform, normalized_style_features, palette_transform
from meshstyle.stylization.optimize import (NEUTRAL_FILL, Objective, PatchTarget, TrainView, evaluate_views,
                                            load_checkpoint, optimize, render_patch, resolve_views_per_step,
                                            steps_per_second)
from meshstyle.stylization.patches import LevelPatch, reference_depth, split_by_depth
from meshstyle.common.progress import log, progress
from meshstyle.outputs.provenance import style_record
from meshstyle.raster.rasterizer import Rasterizer, view_pyramids
from meshstyle.outputs.run_folder import StylizeResult
from meshstyle.atlas.texture_size import pack_size
from meshstyle.views.texel_density import view_texture_size
from meshstyle.stylization.photo_targets import content_target
from meshstyle.views.frame_selection import select_frames
from meshstyle.geometry.camera import Camera
from meshstyle.geometry.scene import Appearance, Photo, Scene, TexturedMesh, View
from meshstyle.inputs.regions import RegionPlan, resolve_regions
from meshstyle.inputs.styles import load_style, resize_long_side
from meshstyle.stylization.regions import (RegionTexture, TexelRegions, propagate_by_region, region_palette_masks,
                                           restore_kept, restrict_seams, texel_regions)
from meshstyle.stylization.texture import LaplacianTexture
from meshstyle.stylization.vgg import bfloat16_pays_off, load_vgg

CHECKPOINT_NAME = "checkpoint.pt"
ASPECT = 4 / 3   # width / height of generated cameras


def quick_config() -> StylizeConfig:
    """A smoke-test run (`meshstyle demo --quick`): under a minute on 2 cores, style still visible."""
    config = StylizeConfig()
    config.cameras.views = 8
    config.cameras.holdout = 2
    config.raster.image_height = 96
    config.raster.levels = 2
    config.raster.near_levels = 0
    config.texture.size = 512
    config.loss.style_scales = (1.0,)
    config.loss.style_size = 192
    # Only 40 steps: it keeps the former, faster rate, at which the quick bench rows were measured.
    config.optim.iters, config.optim.lr = 40, 0.02
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
    seams: SeamFill | None = None     # gutter -> texels across the seams, applied at every lookup
    texels: TexelPoints | None = None # the atlas's used texels on the surface
    seen: np.ndarray | None = None    # (T,) which of them a training view sees

    style_images: list[np.ndarray] = field(default_factory=list)   # every blended style, as used
    fingerprints: dict[str, str] = field(default_factory=dict)   # see input_fingerprints
    regions: TexelRegions | None = None   # with --region: each texel's region (stylization/regions.py)
    face_region: np.ndarray | None = None  # (F,) each face's region, with --region

    def new_texture(self, device: torch.device, levels: int) -> torch.nn.Module:
        """The optimised texture, starting at `start`: one Laplacian pyramid, or one per region."""
        start = self.start_tensor.to(device)
        if self.regions is None:
            return LaplacianTexture(start, levels)
        return RegionTexture(start, levels, self.regions)

    @property
    def initial_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.initial).permute(2, 0, 1).contiguous()

    @property
    def start_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.start).permute(2, 0, 1).contiguous()


def stylize(scene: Scene | None, style: str | Path | np.ndarray, config: StylizeConfig | None = None,
            out_dir: Path | None = None, resume: bool = False,
            observers: Sequence[RunObserver] = ()) -> StylizeResult:
    """Repaint `scene`'s texture in the style of `style` (image file, built-in name or (H,W,3) array;
    a list of them is blended with `config.loss.style_weights`). `observers` watch the run
    (snapshots, the live viewer; outputs/monitor.py) without changing it.

    Under torchrun every rank calls this and gets the same result (distributed.py): rank 0 prepares
    and checkpoints, and only rank 0 needs `scene` (the others may pass None); `result.save` writes
    on rank 0 only."""
    config = (config if config is not None else StylizeConfig()).validate()
    world = distributed.world(config.device)
    checkpoint_path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    if resume and checkpoint_path is None:
        raise InputError(None, "resume needs the run folder (out_dir) that holds checkpoint.pt")
    resume_state = distributed.run_on_main(world, lambda: load_checkpoint(checkpoint_path)) if resume else None
    stored_atlas = None
    if resume_state is not None and world.is_main:
        # Refuse a changed mesh, style or loss before any work; the cameras once they are known.
        check_fingerprints(resume_state, input_fingerprints(scene, style, config), checkpoint_path)
        stored_atlas = checkpoint_atlas(resume_state, scene, checkpoint_path)
    prepared, scene = prepare_shared(world, scene, style, config, atlas=stored_atlas)
    if resume_state is not None and world.is_main:
        check_fingerprints(resume_state, prepared.fingerprints, checkpoint_path)
    timings = prepared.timings
    device = torch.device(config.device)
    optim = distributed.scale_schedule(resolve_views_per_step(config.optim, device), world.size)
    for observer in observers:
        observer.started(run_start(scene, prepared, config, out_dir, resume_state))
    with stage("optimise", timings):
        texture = prepared.new_texture(device, config.texture.pyramid_levels)
        outcome = optimize(texture, prepared.views, prepared.objective, optim, config.seed,
                           checkpoint_path=checkpoint_path if world.is_main else None, resume=resume_state,
                           world=world, on_step=step_hook(observers, lambda: texture_pixels(texture)),
                           checkpoint_extra=checkpoint_extra(prepared))
    info = dict(prepared.info)
    final, info["painted"] = finish_texture(outcome.texture.permute(1, 2, 0).cpu().numpy(), prepared)
    final_tensor = torch.from_numpy(final).permute(2, 0, 1).contiguous().to(device)
    info["style_source"] = style_record(style)
    info["steps"] = len(outcome.history)
    info["steps_per_s"] = steps_per_second(outcome.history[len(outcome.history) - outcome.steps_run:])
    info["views_per_step"] = max(1, min(optim.views_per_step, len(prepared.views)))   # per rank, auto resolved
    if device.type == "cuda":
        # What a user sizes a card by: the allocator's high-water mark over loading, rasterizing and optimising.
        info["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        info["gpu"] = torch.cuda.get_device_name(device)
    if world.enabled:
        info["distributed"] = {**world.info(), "steps": optim.iters,
                               "views_per_step": info["views_per_step"] * world.size}

    def holdout_losses() -> dict[str, Any]:
        # Style loss on views never trained on: how well the style carries over to new viewpoints.
        before = evaluate_views(prepared.initial_tensor.to(device), prepared.holdout_views, prepared.objective)
        after = evaluate_views(final_tensor, prepared.holdout_views, prepared.objective)
        return {"holdout_style_loss": {"initial": before.style, "final": after.style},
                "holdout_content_loss": {"initial": before.content, "final": after.content}}

    if prepared.holdout_views:
        info.update(distributed.run_on_main(world, holdout_losses))
    stylized = final
    for observer in observers:
        observer.finished(stylized)
    atlas = prepared.atlas
    return StylizeResult(
        mesh=TexturedMesh(scene.vertices, scene.faces, atlas.uv, stylized),
        original=TexturedMesh(scene.vertices, scene.faces, atlas.uv, prepared.initial),
        views=prepared.train, holdout_views=prepared.holdout, style_image=prepared.style_image,
        style_images=prepared.style_images,
        config=config, scene=scene, history=outcome.history, timings=timings, info=info,
        checkpoint=outcome.checkpoint)


def run_start(scene: Scene, prepared: Prepared, config: StylizeConfig, out_dir: Path | None,
              resume_state: dict[str, Any] | None) -> RunStart:
    atlas = prepared.atlas
    return RunStart(mesh=TexturedMesh(scene.vertices, scene.faces, atlas.uv, prepared.initial),
                    cameras=[view.camera for view in prepared.train], style_image=prepared.style_image,
                    up=scene.up, kind=scene.kind, name=scene.name, iters=config.optim.iters,
                    first_step=int(resume_state["step"]) if resume_state else 0,
                    out_dir=Path(out_dir) if out_dir is not None else None)


def texture_pixels(texture: torch.nn.Module) -> np.ndarray:
    """(H,W,3) float32 copy of the texture being optimised, as it will be saved."""
    with torch.no_grad():
        return texture().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy().astype(np.float32)


def prepare_shared(world: distributed.World, scene: Scene | None, style: str | Path | np.ndarray,
                   config: StylizeConfig, atlas: Atlas | None = None) -> tuple[Prepared, Scene]:
    """`prepare` on rank 0, broadcast to the other ranks (distributed.py says why not the disk
    cache); each rank builds its own VGG. Returns what the rank needs: the prepared run and the
    scene's geometry (its photos stay on rank 0, whose content crops travel in the views)."""
    if not world.enabled:
        return prepare(scene, style, config, atlas=atlas), scene
    made: dict[str, Prepared] = {}

    def build() -> None:
        made["prepared"] = prepare(scene, style, config, atlas=atlas)

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


def prepare(scene: Scene, style: str | Path | np.ndarray, config: StylizeConfig,
            atlas: Atlas | None = None) -> Prepared:
    """Atlas, cameras, view pyramids, style targets and per-view patches: all but the optimisation.

    `atlas`: the one a resumed run used (kept in its checkpoint), instead of unwrapping again."""
    config.validate()
    configure_torch(config)
    device = torch.device(config.device)
    content_source = content_source_for(scene, config)
    plan = resolve_regions(scene, config.regions.styles, config.regions.labels)
    timings: dict[str, float] = {}
    texture = config.texture
    # Without a side or a density in the config, the side comes from the views (`view_texture_size`):
    # the atlas is unwrapped for the smallest side it may get, and a resumed run keeps its own.
    from_views = not texture.size and texture.texels_per_metre <= 0 and atlas is None
    with stage("atlas", timings):
        if atlas is not None and not texture.size:
            size = atlas.size
        else:
            size = pack_size(scene, texture.size, texture.texels_per_metre, texture.max_size)
        if atlas is None or atlas.size != size:
            if atlas is not None:
                raise InputError("texture.size", f"is {size}, but the run being resumed used {atlas.size}")
            atlas = make_atlas(scene, size, config.scene)

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
        if candidates and candidates[0].photo is not None:
            train, holdout = split_holdout(kept, config.cameras.holdout, rng)
        else:
            train, holdout = split_for_coverage(kept, config, rasterizer, atlas, rng)

    with stage("raster", timings):
        heights = pyramid_heights(config)
        pyramids = view_pyramids(rasterizer, [view.camera for view in train], heights,
                                 cache_dir=config.raster.cache_dir)
        holdout_pyramids = view_pyramids(rasterizer, [view.camera for view in holdout], heights,
                                         cache_dir=config.raster.cache_dir)
        depth_reference = reference_depth(pyramids, config.loss, config.raster.image_height)
        camera_level = reference_level(config)
        if from_views:
            size, wanted = view_texture_size(pyramids, camera_level, depth_reference, texture.texels_per_pixel,
                                             size, texture.max_size)
            log(f"texture: {size}^2 ({wanted:.0f}^2 gives the views {texture.texels_per_pixel:g} texels per "
                f"painted pixel)")
            atlas = atlas.at_size(size)

    with stage("texels", timings):
        seams = seam_fill_for(scene.vertices, scene.faces, atlas.uv, size)
        # The mesh's own colours continue across the seams too, so the content target has no seams.
        initial = np.ascontiguousarray(fill_seams_numpy(bake_texture(scene, atlas, size), seams), dtype=np.float32)
        regions = None
        if plan is not None:
            regions = texel_regions(atlas.uv, size, plan.face_region, plan.keep, plan.painted)
            seams = restrict_seams(seams, regions)
        texels = texel_points(scene.vertices, scene.faces, atlas.uv, size)
        # Judged at the cameras' own height: a near level's coarser pixels would miss thin parts.
        seen = seen_mask(texels, [pyramid.camera.scaled(pyramid.levels[camera_level].height) for pyramid in pyramids],
                         [pyramid.levels[camera_level] for pyramid in pyramids])

    with stage("targets", timings):
        vgg = load_vgg(device=device, dtype=vgg_dtype(config), channels_last=config.optim.channels_last)
        focal = level0_focal([view.camera for view in train], heights[0])
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        weights = blend_weights(len(styles), config.loss.style_weights)
        initial_tensor = torch.from_numpy(initial).permute(2, 0, 1).contiguous()
        style_images = []
        for index, one_style in enumerate(styles):
            # The first style may move the reference depth (an extent beyond the style size range);
            # the others are then sized for that same depth.
            style_size, moved = style_scale_for_extent(one_style, config.loss, focal, depth_reference)
            depth_reference = moved if index == 0 else depth_reference
            image = torch.from_numpy(style_pixels(one_style, style_size)).permute(2, 0, 1)
            if config.loss.preserve_color:
                image = match_colors(image, initial_tensor)
            style_images.append(image)
        style_image = style_images[0]
        palette: ColorTransform | dict[int, ColorTransform] = ColorTransform.identity()
        if plan is not None:
            region_images = region_style_images(plan, config, focal, depth_reference, initial_tensor)
            palette, initial_tensor = region_palettes(plan, regions, region_images, style_images, initial_tensor,
                                                      atlas.uv, config, weights)
        elif config.loss.palette and not config.loss.preserve_color:
            # A blend's palette is the blend's: the colour moments of all its styles' pixels pooled
            # with the style weights, as its Grams are (with the first style's alone, a 50/50 blend
            # started in the first style's colours and ended barely between the single-style runs).
            sample, used = texture_sample(initial_tensor, atlas.uv)
            palette = palette_transform(sample, style_images, used, strength=min(1.0, config.loss.style_strength),
                                        target_weights=weights)
            initial_tensor = palette(initial_tensor)
        start = np.ascontiguousarray(initial_tensor.permute(1, 2, 0).numpy(), dtype=np.float32)
        per_style = [style_targets(vgg, image.to(device), config.loss.style_layers, config.loss.style_scales,
                                   config.loss.statistic) for image in style_images]
        objective = Objective(vgg=vgg, style=blend_targets(per_style, weights), loss=config.loss,
                              regularizer=config.texture.regularizer, seams=seams,
                              nnfm=nnfm_targets(vgg, style_image.to(device), config))
        if plan is not None:
            # The rest region (main style) keeps the blend; a named region its own image's targets.
            for region, image in region_images.items():
                if image is not None:
                    objective.region_style[region] = style_targets(
                        vgg, image.to(device), config.loss.style_layers, config.loss.style_scales, config.loss.statistic)
                    objective.region_nnfm[region] = nnfm_targets(vgg, image.to(device), config)
        face_region = torch.from_numpy(plan.face_region.astype(np.int64)) if plan is not None else None
        skip = plan.keep if plan is not None else frozenset()
        views = [train_view(pyramid, initial_tensor, view.photo, content_source, config, depth_reference, palette,
                            face_region=face_region, skip=skip)
                 for view, pyramid in zip(train, progress(pyramids, desc="patches", unit="view"))]
        views = [view.to(device) for view in views if view.targets]
        if not views:
            raise InputError(scene.source or scene.name, "no training view has pixels to stylize")
        holdout_views = [train_view(pyramid, initial_tensor, view.photo, content_source, config,
                                    depth_reference, palette, face_region=face_region, skip=skip)
                         for view, pyramid in zip(holdout, holdout_pyramids)]
        holdout_views = [view.to(device) for view in holdout_views if view.targets]

    patches = [t.patch for view in views for t in view.targets]
    info = {
        "atlas": atlas_info(atlas),
        "texture_size": size,
        "views": len(train),
        "holdout_views": len(holdout),
        "dropped_views": dropped,
        "seams": seams.info(),
        "coverage": float(np.mean([float(p.levels[camera_level].mask.float().mean()) for p in pyramids])),
        "content_target": content_source,
        "reference_depth_m": depth_reference,
        # The width of surface the whole style image covers (scale 1): the world size of its strokes.
        "style_extent_m": style_image.shape[2] * depth_reference / focal,
        "style_size_px": [int(style_image.shape[1]), int(style_image.shape[2])],
        "style_weights": weights,
        "patches_per_view": len(patches) / len(views),
        "patch_pixels_per_view": sum(p.pixels for p in patches) / len(views),
        "level_pixels": {str(k): sum(p.pixels for p in patches if p.level == k) for k in range(len(heights))},
        # What precision=auto chose on this machine (from its CPU flags: vgg.bfloat16_pays_off).
        "vgg_precision": str(vgg.compute_dtype).removeprefix("torch."),
    }
    if plan is not None:
        info["regions"] = [region.record(main_style_name(style)) for region in plan.regions]
    fingerprints = dict(input_fingerprints(scene, style, config),
                        atlas=fingerprint(atlas.uv, atlas.size),
                        cameras=fingerprint([(v.camera.K, v.camera.cam_to_world, v.camera.width, v.camera.height)
                                             for v in train], heights))
    return Prepared(atlas=atlas, initial=initial, start=start, train=train, holdout=holdout, views=views,
                    holdout_views=holdout_views, objective=objective,
                    style_image=style_image.permute(1, 2, 0).cpu().numpy(), info=info, timings=timings,
                    seams=seams, texels=texels, seen=seen,
                    style_images=[image.permute(1, 2, 0).cpu().numpy() for image in style_images],
                    fingerprints=fingerprints, regions=regions,
                    face_region=plan.face_region if plan is not None else None)


def main_style_name(style: str | Path | np.ndarray) -> str:
    """The main --style as run.json's region records name it."""
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    return " + ".join("array" if isinstance(one, np.ndarray) else str(one) for one in styles)


def region_style_images(plan: RegionPlan, config: StylizeConfig, focal: float,
                        depth_reference: float, initial: torch.Tensor) -> dict[int, torch.Tensor | None]:
    """Per painted region, its own style image as used (None: the main style's blend), sized for
    the run's reference depth so that its strokes have the run's world size too."""
    images: dict[int, torch.Tensor | None] = {}
    for index in plan.painted:
        spec = plan.regions[index].style
        if not spec:
            images[index] = None
            continue
        side, _ = style_scale_for_extent(spec, config.loss, focal, depth_reference)
        image = torch.from_numpy(style_pixels(spec, side)).permute(2, 0, 1)
        images[index] = match_colors(image, initial) if config.loss.preserve_color else image
    return images


def region_palettes(plan: RegionPlan, regions: TexelRegions, images: dict[int, torch.Tensor | None],
                    main_images: list[torch.Tensor], initial: torch.Tensor, uv: np.ndarray, config: StylizeConfig,
                    main_weights: list[float] | None = None) -> tuple[dict[int, ColorTransform], torch.Tensor]:
    """The palette step per region: each region's texels get its own style's colour mean and
    covariance, measured on its own texels only (keep regions: unchanged); the rest region gets the
    main style's, pooled over a blend's styles with `main_weights` as without regions. Returns the
    colour maps (for the photos' content crops) and the start texture."""
    palettes = {index: ColorTransform.identity() for index in plan.painted}
    if not config.loss.palette or config.loss.preserve_color:
        return palettes, initial
    sample, used = texture_sample(initial, uv)
    masks = region_palette_masks(regions, sample.shape[-1])
    owner = torch.from_numpy(regions.owner)
    start = initial.clone()
    for index in plan.painted:
        region_used = masks[index] if used is None else masks[index] & used
        if not bool(region_used.any()):
            continue
        own = images[index] is not None
        palettes[index] = palette_transform(sample, images[index] if own else main_images, region_used,
                                            strength=min(1.0, config.loss.style_strength),
                                            target_weights=None if own else main_weights)
        start = torch.where(owner[None] == index, palettes[index](initial), start)
    return palettes, start



MAX_STYLE_SIDE = 2048   # VGG memory and time grow with the style image's area
MIN_EXTENT_STYLE_SIDE = 64   # below this the coarser style scales leave relu5_1 almost no pixels


def blend_weights(count: int, weights: tuple[float, ...]) -> list[float]:
    """Normalised weights of `count` blended styles; the default (1.0,) means equal."""
    if tuple(weights) == (1.0,) and count > 1:
        weights = (1.0,) * count
    if len(weights) != count:
        raise InputError("--style-weights", f"{len(weights)} weights for {count} styles (one per style)")
    if min(weights) < 0 or sum(weights) <= 0:
        raise InputError("--style-weights", f"weights must be >= 0 and not all 0, got {list(weights)}")
    return [float(w) / float(sum(weights)) for w in weights]


def level0_focal(cameras: list[Camera], height: int) -> float:
    """Median vertical focal length, in pixels of the coarsest pyramid level, of the training views."""
    return float(np.median([camera.K[1, 1] * height / camera.height for camera in cameras]))


def style_scale_for_extent(style: str | Path | np.ndarray, loss: LossConfig, focal: float,
                           depth_reference: float) -> tuple[int, float]:
    """(style image long side in px, reference depth in m) that make the style image's width cover
    `loss.style_extent` metres of surface; without an extent, (style_size, the reference depth).

    At the reference depth one pixel of the coarsest level spans depth/focal metres, and the
    depth-split pyramid keeps that world size at other depths; style pixels map 1:1 to rendered
    pixels (VGG statistics are per pixel), so a style image `w` pixels wide covers w*depth/focal
    metres. The extent therefore sets w; when w would leave [MIN_EXTENT_STYLE_SIDE, MAX_STYLE_SIDE], the
    side is clamped and the reference depth moves instead (strokes keep their world size, but the
    pyramid then covers another band of depths)."""
    from meshstyle.common.progress import warn

    extent = float(getattr(loss, "style_extent", 0.0) or 0.0)
    if extent <= 0:
        return loss.style_size, depth_reference
    probe = style_pixels(style, loss.style_size)
    long_per_width = max(probe.shape[:2]) / probe.shape[1]
    wanted = extent * focal / depth_reference * long_per_width
    side = int(round(min(max(wanted, MIN_EXTENT_STYLE_SIDE), MAX_STYLE_SIDE)))
    if side != int(round(wanted)):
        moved = extent * focal / (side / long_per_width)
        warn(f"style extent {extent:g} m needs a {wanted:.0f}-px style image; using {side} px and "
             f"reference depth {moved:.2f} m instead of {depth_reference:.2f} m")
        depth_reference = moved
    return side, depth_reference


def finish_texture(texture: np.ndarray, prepared: Prepared) -> tuple[np.ndarray, dict[str, float]]:
    """The optimised (H,W,3) texture made whole (`paint_unseen`); returns it and the run.json
    figures of how much was painted. Keep regions end exactly as they started."""
    texels, seen = prepared.texels, prepared.seen
    texture = np.ascontiguousarray(texture, dtype=np.float32)
    if texels is None or seen is None or len(texels.index) == 0:
        return texture, {}
    used = len(texels.index)
    propagated = used - int(seen.sum())
    # Every used texel now holds paint: seen ones from the optimiser, the rest carried over
    # (nothing to carry when no view saw anything).
    painted = 1.0 if propagated == 0 or seen.any() else 0.0
    finished = paint_unseen(texture, texels, seen, prepared.seams, prepared.regions, prepared.face_region)
    if prepared.regions is not None:
        finished = restore_kept(finished, prepared.initial, prepared.regions)
    return finished, {
        "used_texels": used, "seen_share": round(float(seen.mean()), 4),
        "propagated_share": round(propagated / used, 4), "painted_share": painted}


def paint_unseen(texture: np.ndarray, texels: TexelPoints, seen: np.ndarray, seams: SeamFill | None,
                 regions: TexelRegions | None = None, face_region: np.ndarray | None = None) -> np.ndarray:
    """Texels no training view saw take paint carried over the surface from the seen ones (never
    their original colours; with regions, only from their own region), then the gutters and the
    band along each seam are refilled from across the seams, and the texels beyond the gutters
    from coarse means."""
    if regions is not None and face_region is not None:
        texture = propagate_by_region(texture, texels, seen, face_region, regions)
    else:
        texture = propagate_paint(texture, texels, seen)
    if seams is not None:
        texture = fill_seams_numpy(texture, seams)
    size = texture.shape[0]
    filled = np.zeros(size * size, dtype=bool)
    filled[texels.index] = True
    if seams is not None:
        filled[seams.gutter] = True
    return fill_gutter(texture, filled.reshape(size, size), 0).clip(0.0, 1.0)


# --- what a checkpoint remembers of its run, so that --resume continues the same optimisation ----

# What each fingerprint covers, for the message when a resume is refused.
FINGERPRINT_MEANING = {
    "mesh": "the scene's mesh", "style": "the style image", "loss": "the loss/texture/optimiser config",
    "atlas": "the UV atlas", "cameras": "the training cameras or raster sizes",
    "regions": "the regions or their styles",
}
# Optimiser keys that may differ on resume: more iterations extend a run; the rest is bookkeeping.
RESUMABLE_OPTIM_KEYS = ("iters", "checkpoint_every_s")


def input_fingerprints(scene: Scene, style: str | Path | np.ndarray, config: StylizeConfig) -> dict[str, str]:
    """Digests of what a resumed run must share with the checkpoint, known before any stage runs."""
    optim = {key: value for key, value in dataclasses.asdict(config.optim).items() if key not in RESUMABLE_OPTIM_KEYS}
    prints = {
        "mesh": fingerprint(np.asarray(scene.vertices, dtype=np.float64), np.asarray(scene.faces, dtype=np.int64)),
        "style": fingerprint(*[style_pixels(one, config.loss.style_size)
                               for one in (style if isinstance(style, (list, tuple)) else [style])]),
        "loss": fingerprint(dataclasses.asdict(config.loss), dataclasses.asdict(config.texture), optim,
                            config.cameras.kind, config.cameras.min_coverage, config.device),
    }
    plan = resolve_regions(scene, config.regions.styles, config.regions.labels) if scene is not None else None
    if plan is not None:   # only with --region, so runs without regions resume old checkpoints
        prints["regions"] = fingerprint(plan.face_region, [(r.name, r.style or "") for r in plan.regions],
                                        *[style_pixels(r.style, config.loss.style_size) for r in plan.regions if r.style])
    return prints


def check_fingerprints(checkpoint: dict[str, Any], current: dict[str, str], source: Path | None) -> None:
    """Exit-2 error naming what changed since the checkpoint was written."""
    stored = checkpoint.get("fingerprints")
    where = source if source is not None else "checkpoint"
    if not isinstance(stored, dict):
        raise InputError(where, "has no input fingerprints (written by an older meshstyle); start over with --overwrite")
    changed = [FINGERPRINT_MEANING.get(key, key) for key, value in current.items() if stored.get(key) != value]
    if changed:
        raise InputError(where, f"cannot resume: {', '.join(changed)} changed since this checkpoint was written "
                                "(resume with the same inputs and config, or start over with --overwrite)")


def checkpoint_extra(prepared: Prepared) -> dict[str, Any]:
    """Stored in every checkpoint: fingerprints, and the atlas itself, so that a resume never
    depends on the cache (uvatlas gives a different atlas on every fresh unwrap)."""
    atlas = prepared.atlas
    return {"fingerprints": dict(prepared.fingerprints),
            "atlas": {"uv": torch.from_numpy(np.ascontiguousarray(atlas.uv, dtype=np.float32)),
                      "size": int(atlas.size), "method": str(atlas.method)}}


def checkpoint_atlas(checkpoint: dict[str, Any], scene: Scene, source: Path | None) -> Atlas:
    """The atlas a checkpointed run optimised on, checked against the scene."""
    where = source if source is not None else "checkpoint"
    stored = checkpoint.get("atlas")
    if not isinstance(stored, dict) or not isinstance(stored.get("uv"), torch.Tensor):
        raise InputError(where, "holds no atlas (written by an older meshstyle); start over with --overwrite")
    uv = stored["uv"].numpy().astype(np.float32)
    size = stored.get("size")
    if uv.shape != (len(scene.faces), 3, 2) or not np.isfinite(uv).all() or not isinstance(size, int) or size < 1:
        raise InputError(where, "its atlas does not fit the scene's mesh")
    return _measured_atlas(scene, uv, size, str(stored.get("method", "kept")), time.perf_counter())


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
    # More candidates than views: the training views are then picked for texel coverage.
    candidates = max(wanted, int(round(config.cameras.views * max(1.0, config.cameras.candidates)))
                     + config.cameras.holdout)
    cameras = for_scene(scene, candidates, config.cameras, rng, int(round(height * ASPECT)), height,
                        rasterizer=rasterizer)
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
               palette: ColorTransform | dict[int, ColorTransform] | None = None,
               face_region: torch.Tensor | None = None, skip: frozenset[int] = frozenset()) -> TrainView:
    """A view's depth-split patches, each with the crop of the image it should still resemble.

    `initial` is the texture the optimisation starts from (after the palette step); photos go
    through the same `palette` map, so the content loss keeps structure, not the original colours.
    With regions (`face_region`, see split_by_depth) `palette` holds each region's map, and a
    region's photo crop shows only its own pixels, over the neutral fill its render has too.
    """
    patches = split_by_depth(pyramid, config.loss, depth_reference, face_region, skip)
    if content_source == "none":
        return TrainView([PatchTarget(patch, None, None) for patch in patches])
    if content_source == "photo" and photo is not None:
        per_region = isinstance(palette, dict)
        level_targets = {}
        for level in sorted({patch.level for patch in patches}):
            fragments = pyramid.levels[level]
            camera = photo.camera.scaled(fragments.height)
            image, valid = content_target(photo, camera, fragments)
            level_targets[level] = (palette(image) if palette is not None and not per_region else image), valid
        targets = []
        for patch in patches:
            image, valid = level_targets[patch.level]
            y0, y1, x0, x1 = patch.box
            crop, crop_valid = image[:, y0:y1, x0:x1], valid[y0:y1, x0:x1]
            if per_region:
                crop = torch.where(patch.mask[None], palette[patch.region](crop), crop.new_full((), NEUTRAL_FILL))
                crop_valid = crop_valid & patch.mask
            # A scan's photos differ in exposure and sit slightly off the mesh; the texture cannot
            # hold every photo's colours at once, but it can hold the mesh's fused ones.
            layout = mesh_content(initial, patch) if config.loss.layout_target == "mesh" else (None, None)
            targets.append(PatchTarget(patch, crop.contiguous(), crop_valid.to(torch.float32)[None, None].contiguous(),
                                       *layout))
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
    from meshstyle.stylization.losses import _rescale
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


def split_for_coverage(views: list[View], config: StylizeConfig, rasterizer: Rasterizer, atlas: Atlas,
                       rng: np.random.Generator) -> tuple[list[View], list[View]]:
    """Training views: the `cameras.views` candidates that together see the most atlas texels;
    holdout views: drawn at random from the other candidates (from all when none is left)."""
    count = min(config.cameras.views, len(views))
    order, _share = select_for_coverage([view.camera for view in views], count, rasterizer, atlas.uv)
    chosen = set(order)
    train = [views[i] for i in order]
    rest = [view for i, view in enumerate(views) if i not in chosen]
    holdout = min(max(0, config.cameras.holdout), len(rest))
    if holdout == 0 and config.cameras.holdout > 0:
        return split_holdout(views, config.cameras.holdout, rng)
    held = sorted(rng.choice(len(rest), size=holdout, replace=False).tolist()) if holdout else []
    return train, [rest[i] for i in held]


# VGG-19 pools four times before relu5_1: an image less than 16 px high has no features there.
MIN_LEVEL_HEIGHT = 16


def pyramid_heights(config: StylizeConfig) -> list[int]:
    """Level heights, coarsest first: `near_levels` below `image_height` (those at least
    MIN_LEVEL_HEIGHT high), then `levels` from it up."""
    raster = config.raster
    if not config.loss.depth_aware:
        return [raster.image_height]
    return _near_heights(config) + [int(round(raster.image_height * raster.level_scale ** k))
                                    for k in range(max(1, raster.levels))]


def _near_heights(config: StylizeConfig) -> list[int]:
    raster = config.raster
    heights = [int(round(raster.image_height * raster.level_scale ** -k)) for k in range(raster.near_levels, 0, -1)]
    return [height for height in heights if height >= MIN_LEVEL_HEIGHT]


def reference_level(config: StylizeConfig) -> int:
    """Index, in `pyramid_heights`, of the level `image_height` high (where the reference depth is seen)."""
    return len(_near_heights(config)) if config.loss.depth_aware else 0


def vgg_dtype(config: StylizeConfig) -> torch.dtype:
    """The VGG's compute precision. bfloat16 autocast measured as good as float32 on demo-room
    (holdout style loss 0.45x vs 0.46x of the start, judged by the float32 network) and 1.5x
    faster per step where the CPU is fast at it; "auto" uses it only on CPUs with AMX
    (`bfloat16_pays_off`), so a seed gives one texture on a machine however busy it is."""
    choice = config.optim.precision
    if choice == "auto":
        fast = config.device == "cpu" and bfloat16_pays_off()
        return torch.bfloat16 if fast else torch.float32
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

