"""The optimiser loop: repaint a Laplacian texture so every training view matches the style.

One step draws `views_per_step` views (a fresh random order each epoch, a pure function of the
seed and the epoch, so a resumed run draws the same views), and for every depth-split patch of
those views samples the texture at the patch's UVs, runs VGG on the crop and adds the weighted
style loss and the content loss. Patches are back-propagated one at a time into a detached copy of
the summed texture, and that gradient is pushed through the Laplacian layers once per step: memory
stays at one VGG graph however many patches a step holds.

Choices: Adam with an exponential learning-rate decay (lr -> lr * lr_decay over the run); the
summed texture is clamped to [0,1] once per step, outside the graph, by correcting the finest
Laplacian layer (docs/TRAPS.md). The Laplacian-layer penalty is off by default (texture.regularizer = 0):
StyleMesh's [8,4,2,0] x 5e3 erased the fine layers and blurred the texture (docs/TRAPS.md); the coarse
layers already spread each view's gradient over neighbouring texels.

Checkpoints (texture layers, optimiser state, step, schedule seed, history) are written atomically
every `checkpoint_every_s` and when the run is interrupted; Ctrl-C is honoured between patches so a
checkpoint never holds a half-applied step.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import pickle
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from meshstyle.config import LossConfig, OptimConfig
from meshstyle.common.distributed import LOCAL, RankLost, World, reduce_step
from meshstyle.errors import InputError, Interrupted
from meshstyle.common.io import atomic_path
from meshstyle.stylization.losses import (StyleTargets, content_loss, layout_loss, projection_key, style_loss,
                                          tv_loss)
from meshstyle.stylization.paint import nnfm_loss
from meshstyle.stylization.patches import LevelPatch
from meshstyle.common.progress import progress
from meshstyle.atlas.seams import SeamFill, fill_seams
from meshstyle.stylization.texture import LaplacianTexture, StepMips, sample

CHECKPOINT_VERSION = 2   # 2: the run's atlas and input fingerprints, checked on resume
NEUTRAL_FILL = 0.5   # grey behind uncovered pixels: no style pull towards any colour


@dataclass
class PatchTarget:
    """A patch with its content target crop (the image the view should still resemble)."""
    patch: LevelPatch
    content_image: torch.Tensor | None    # (3,h,w) in [0,1], or None in style-only mode
    content_weight: torch.Tensor | None   # (1,1,h,w): 1 where the content target is valid
    layout_image: torch.Tensor | None = None    # (3,h,w) colours large regions keep; None: content_image
    layout_weight: torch.Tensor | None = None   # (1,1,h,w) where layout_image counts

    def to(self, device: str | torch.device) -> "PatchTarget":
        move = lambda tensor: None if tensor is None else tensor.to(device)  # noqa: E731
        return PatchTarget(self.patch.to(device), move(self.content_image), move(self.content_weight),
                           move(self.layout_image), move(self.layout_weight))

    def layout(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The colour-layout target and the pixels where it counts."""
        if self.layout_image is not None:
            return self.layout_image, self.layout_weight
        return self.content_image, self.content_weight


@dataclass
class TrainView:
    """One optimisation view: its depth-split patches and their content targets."""
    targets: list[PatchTarget]

    def to(self, device: str | torch.device) -> "TrainView":
        return TrainView([target.to(device) for target in self.targets])


@dataclass
class Objective:
    """What the loss is made of; fixed for a run."""
    vgg: torch.nn.Module
    style: StyleTargets
    loss: LossConfig
    regularizer: float = 0.0          # weight of the Laplacian-layer penalty
    seams: SeamFill | None = None     # gutter texels re-read from across the seams at every lookup
    nnfm: dict[str, torch.Tensor] = field(default_factory=dict)   # layer -> (M,C) unit style features
    # With --region: per region (LevelPatch.region), its own style targets and NNFM features; empty
    # = every patch uses `style` / `nnfm`.
    region_style: dict[int, StyleTargets] = field(default_factory=dict)
    region_nnfm: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    def style_of(self, region: int) -> StyleTargets:
        return self.region_style.get(region, self.style)

    def nnfm_of(self, region: int) -> dict[str, torch.Tensor]:
        return self.region_nnfm.get(region, self.nnfm)

    def painted(self, texture: torch.Tensor) -> torch.Tensor:
        """The (3,H,W) texture the views see: its gutters refilled from across the seams, so
        bilinear and mip lookups at a chart border continue the strokes of the neighbouring chart
        (and their gradient paints those strokes)."""
        return texture if self.seams is None else fill_seams(texture, self.seams)

    @property
    def style_weight(self) -> float:
        # The style-strength knob scales the style terms only, so 1.0 is the tuned balance.
        return self.loss.style_weight * self.loss.style_strength

    @property
    def nnfm_weight(self) -> float:
        return self.loss.nnfm_weight * self.loss.style_strength if self.nnfm else 0.0

    @property
    def content_weight(self) -> float:
        return 0.0 if self.loss.style_only else self.loss.content_weight

    @property
    def layout_weight(self) -> float:
        return 0.0 if self.loss.style_only else self.loss.layout_weight

    @property
    def layer_weights(self) -> dict[str, float]:
        return dict(zip(self.loss.style_layers, self.loss.style_layer_weights))

    @property
    def layers(self) -> tuple[str, ...]:
        layers = tuple(self.loss.style_layers) if self.style_weight > 0 else ()
        if self.nnfm_weight > 0:
            layers += tuple(layer for layer in self.nnfm if layer not in layers)
        if self.content_weight > 0 and self.loss.content_layer not in layers:
            layers += (self.loss.content_layer,)
        return layers


@dataclass
class LossTerms:
    style: float = 0.0
    content: float = 0.0
    tv: float = 0.0
    regularizer: float = 0.0

    @property
    def total(self) -> float:
        return self.style + self.content + self.tv + self.regularizer


@dataclass(frozen=True, eq=False)
class StepRecord(Mapping[str, float]):
    """One completed step of the loss history (run.json "history", the checkpoint's "history").

    It also reads as the dict it replaced (`record["total"]`, `dict(record)`), so callers of
    `StylizeResult.history` keep working and the checkpoint stores plain dicts (safe to load with
    `weights_only`)."""
    step: int                # 1-based: the number of steps done after this one
    total: float             # style + content + tv + regularizer
    style: float
    content: float
    tv: float
    regularizer: float
    lr: float                # base learning rate of the step (layer groups scale it)
    seconds: float           # wall time of the step

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "StepRecord":
        """From a run.json or checkpoint entry; KeyError/TypeError/ValueError when it is not one."""
        return cls(int(record["step"]), *(float(record[name]) for name in STEP_FIELDS[1:]))

    def __getitem__(self, key: str) -> float:
        if key not in STEP_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(STEP_FIELDS)

    def __len__(self) -> int:
        return len(STEP_FIELDS)


STEP_FIELDS = ("step", "total", "style", "content", "tv", "regularizer", "lr", "seconds")


@dataclass
class OptimizeResult:
    texture: torch.Tensor             # (3,H,W) final summed texture in [0,1] (gutters as optimised)
    history: list[StepRecord]
    checkpoint: dict[str, Any]
    steps_run: int                    # steps this call ran (fewer than iters after a resume)
    seconds: float


def views_for_step(step: int, n_views: int, views_per_step: int, seed: int) -> list[int]:
    """Which views step `step` trains on: consecutive slices of per-epoch random permutations.

    A pure function of (seed, step), so resuming needs no generator state beyond the step.
    """
    chosen = []
    for slot in range(step * views_per_step, (step + 1) * views_per_step):
        epoch, position = divmod(slot, n_views)
        order = np.random.default_rng([seed, epoch]).permutation(n_views)
        chosen.append(int(order[position]))
    return chosen


GPU_VIEWS_PER_STEP = 4   # views per step on a GPU with views_per_step = 0 (auto)


def resolve_views_per_step(optim: OptimConfig, device: str | torch.device) -> OptimConfig:
    """The settings with `views_per_step = 0` (auto) made concrete for `device`.

    Summing several views' gradients before Adam normalises them lets each view's strokes cancel
    where the views disagree, so a step moves the texture where they agree: at the same steps,
    2 views per step painted more style at the same content (README, "Quality benchmark"). It costs
    a VGG pass per view, which two CPU cores cannot afford within the run's time budget and a GPU
    can, so auto means 1 on a CPU and GPU_VIEWS_PER_STEP elsewhere."""
    if optim.views_per_step > 0:
        return optim
    resolved = copy.copy(optim)
    resolved.views_per_step = 1 if torch.device(device).type == "cpu" else GPU_VIEWS_PER_STEP
    return resolved


def learning_rate(step: int, optim: OptimConfig) -> float:
    """Exponential decay from `lr` to `lr * lr_decay` over the run."""
    progress_share = step / max(1, optim.iters - 1)
    return optim.lr * optim.lr_decay ** progress_share


def layer_groups(texture: LaplacianTexture, optim: OptimConfig) -> list[dict[str, Any]]:
    """One Adam group per Laplacian layer, the learning rate shrinking by `coarse_lr_scale` per level.

    Adam moves every parameter by about lr per step whatever its gradient, and one coarse texel
    spans 4^k fine ones: at the same rate the coarse layers paint large blotches of drifting colour
    (the rainbow look) before the fine layers have drawn any stroke."""
    levels = getattr(texture, "layer_levels", range(len(texture.layers)))   # RegionTexture: a pyramid per region
    return [{"params": [layer], "lr_scale": optim.coarse_lr_scale ** level}
            for level, layer in zip(levels, texture.layers)]


def optimize(texture: LaplacianTexture, views: list[TrainView], objective: Objective,
             optim: OptimConfig, seed: int, *, checkpoint_path: Path | None = None,
             resume: dict[str, Any] | None = None,
             on_step: Callable[[int, dict[str, float]], None] | None = None,
             world: World = LOCAL, checkpoint_extra: dict[str, Any] | None = None) -> OptimizeResult:
    """Run the optimisation from scratch or from a checkpoint dict (`resume`) up to `optim.iters`.

    `on_step(step, record)` is called after each completed step (tests use it to interrupt a run).
    Under torchrun (`world`, see distributed.py) each rank trains on its slice of the step's views
    and the gradients are averaged before the identical optimiser step; pass `checkpoint_path`
    on rank 0 only. `checkpoint_extra` (plain types and tensors) is stored in every checkpoint:
    the run's atlas and input fingerprints, which `--resume` checks before continuing.
    """
    extra = dict(checkpoint_extra or {})
    if not views:
        raise ValueError("no training views to optimise on")
    # The fused kernel: one pass over each layer instead of a dozen elementwise ops (a 2048² step's
    # Adam 9 ms against 49 ms on the CPU, measured); other devices keep the default kernels.
    fused = texture.layers[0].device.type in ("cpu", "cuda")
    optimizer = torch.optim.Adam(layer_groups(texture, optim), lr=optim.lr, fused=fused)
    history: list[StepRecord] = []
    start = 0
    if resume is not None:
        start, records = restore(resume, texture, optimizer, seed, checkpoint_path)
        try:
            history = [StepRecord.from_dict(record) for record in records]
        except (KeyError, TypeError, ValueError):
            raise InputError(checkpoint_path or "checkpoint",
                             "damaged checkpoint: a loss history entry is not a step record") from None
    content_features = precompute_content(views, objective)
    # Library callers may pass views_per_step = 0 (auto) unresolved; stylize passes it resolved.
    wanted = resolve_views_per_step(optim, texture.layers[0].device).views_per_step
    views_per_step = max(1, min(wanted, len(views)))   # per rank
    schedule = {"views_per_step": views_per_step * world.size, "iters": optim.iters}
    if resume is not None:
        check_schedule(resume, schedule, checkpoint_path)
    started = time.perf_counter()
    last_checkpoint = started
    bar = progress(total=optim.iters, desc="stylize", unit="step")
    bar.update(start)
    try:
        with deferred_interrupt() as interrupt:
            for step in range(start, optim.iters):
                step_started = time.perf_counter()
                lr = learning_rate(step, optim)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                chosen = world.share(views_for_step(step, len(views), views_per_step * world.size, seed),
                                     views_per_step)
                terms = accumulate_gradients(texture, [views[i] for i in chosen], chosen, objective,
                                             content_features, interrupt, world, step=projection_key(seed, step))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                texture.clamp_()
                record = StepRecord(step=step + 1, total=terms.total, style=terms.style,
                                    content=terms.content, tv=terms.tv, regularizer=terms.regularizer,
                                    lr=lr, seconds=time.perf_counter() - step_started)
                history.append(record)
                bar.update(1)
                bar.set_postfix(loss=f"{terms.total:.3g}", style=f"{terms.style:.3g}",
                                content=f"{terms.content:.3g}")
                if on_step is not None:
                    on_step(step + 1, record)
                if interrupt.requested:
                    raise Interrupted(interrupt.signum or signal.SIGINT)
                now = time.perf_counter()
                if checkpoint_path is not None and now - last_checkpoint >= optim.checkpoint_every_s:
                    save_checkpoint(checkpoint_path, make_checkpoint(texture, optimizer, step + 1, seed, history,
                                                                    schedule, extra))
                    last_checkpoint = now
    except (KeyboardInterrupt, RankLost) as interrupted:
        # `history` holds exactly the completed steps; the interrupted one changed no parameter.
        signum = getattr(interrupted, "signum", None) or signal.SIGINT
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, make_checkpoint(texture, optimizer, len(history), seed, history,
                                                             schedule, extra))
        if isinstance(interrupted, RankLost):
            raise
        signum = getattr(interrupted, "signum", None) or signal.SIGINT
        raise Interrupted(signum, checkpoint_path, len(history)) from None
    finally:
        bar.close()
    checkpoint = make_checkpoint(texture, optimizer, len(history), seed, history, schedule, extra)
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, checkpoint)
    with torch.no_grad():
        # The texture as optimised, gutters not refilled: the caller finishes it (pipeline.finish_texture).
        final = texture().clamp(0.0, 1.0)
    return OptimizeResult(texture=final, history=history, checkpoint=checkpoint,
                          steps_run=len(history) - start, seconds=time.perf_counter() - started)


def precompute_content(views: list[TrainView], objective: Objective) -> dict[tuple[int, int], torch.Tensor]:
    """Content-layer features of every patch's content target, keyed (view, patch): computed once."""
    features: dict[tuple[int, int], torch.Tensor] = {}
    if objective.content_weight <= 0:
        return features
    layer = objective.loss.content_layer
    with torch.no_grad():
        for view_id, view in enumerate(progress(views, desc="content features", unit="view")):
            for index, target in enumerate(view.targets):
                if target.content_image is not None:
                    features[(view_id, index)] = objective.vgg(target.content_image[None], (layer,))[layer]
    return features


def accumulate_gradients(texture: LaplacianTexture, views: list[TrainView], view_ids: list[int],
                         objective: Objective, content_features: dict[tuple[int, int], torch.Tensor],
                         interrupt: "InterruptFlag", world: World = LOCAL, step: int = 0) -> LossTerms:
    """Back-propagate the step's loss into the texture's layers; returns the loss terms.

    The step's loss is the mean over its views. Each view's gradient is summed on its own, the
    views' sums added up, and (under torchrun) added over ranks before the one division: the same
    operations in the same order whether 2 views run in one process or 1 on each of 2 ranks, so
    both paths give the same texture (tests/test_distributed.py)."""
    image = objective.painted(texture())
    # Each patch back-propagates into this leaf and frees its VGG graph before the next one.
    leaf = image.detach().requires_grad_(True)
    mips = StepMips.of(leaf)
    terms = LossTerms()
    summed: torch.Tensor | None = None
    for view, view_id in zip(views, view_ids):
        for index, target in enumerate(view.targets):
            if interrupt.requested and not world.enabled:   # ranks stop together, after the all_reduce
                raise Interrupted(interrupt.signum or signal.SIGINT)
            patch_terms = patch_loss(leaf, target, objective, content_features.get((view_id, index)),
                                     projection_key(step, view_id, index), pyramid=mips.levels)
            scale = target.patch.share
            (scale * (patch_terms[0] + patch_terms[1])).backward()
            terms.style += scale * patch_terms[0].item()
            terms.content += scale * patch_terms[1].item()
        # Folded per view, not per step, so a view's gradient is the same sum of the same terms
        # whichever rank it runs on (tests/test_distributed.py).
        mips.fold()
        if leaf.grad is not None:
            summed = leaf.grad if summed is None else summed.add_(leaf.grad)
            leaf.grad = None
    summed = summed if summed is not None else torch.zeros_like(image)
    view_count = len(views)
    if world.enabled:
        (terms.style, terms.content), stop = reduce_step(world, summed, [terms.style, terms.content],
                                                         interrupt.requested)
        if stop:
            raise KeyboardInterrupt
        view_count *= world.size
    terms.style /= view_count
    terms.content /= view_count
    roots, gradients = [image], [summed.div_(view_count)]
    if objective.loss.tv_weight > 0:
        tv = objective.loss.tv_weight * tv_loss(image)
        terms.tv = tv.item()
        roots.append(tv)
        gradients.append(torch.ones_like(tv))
    if objective.regularizer > 0:
        penalty = objective.regularizer * texture.regularizer()
        terms.regularizer = penalty.item()
        roots.append(penalty)
        gradients.append(torch.ones_like(penalty))
    # One backward through the Laplacian sum: the patches' gradient plus the global terms.
    torch.autograd.backward(roots, gradients)
    return terms


def evaluate_views(image: torch.Tensor, views: list[TrainView], objective: Objective) -> LossTerms:
    """Mean weighted style and content loss of `views` seen on texture `image` (3,H,W), without gradients."""
    terms = LossTerms()
    content_features = precompute_content(views, objective)
    image = objective.painted(image)
    with torch.no_grad():
        for view_id, view in enumerate(views):
            for index, target in enumerate(view.targets):
                style, content = patch_loss(image, target, objective, content_features.get((view_id, index)),
                                            projection_key(view_id, index))
                terms.style += target.patch.share * style.item() / len(views)
                terms.content += target.patch.share * content.item() / len(views)
    return terms


def patch_loss(image: torch.Tensor, target: PatchTarget, objective: Objective,
               content_features: torch.Tensor | None, key: int | None = None,
               pyramid: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted style loss, weighted content loss) of one patch rendered from `image`; `key` seeds
    the random slices of the sliced Wasserstein loss."""
    patch = target.patch
    layout_image, layout_weight = target.layout()
    return image_loss(render_patch(image, patch, pyramid), patch.weight, objective, content_features, target.content_weight,
                      key, region=patch.region, layout_image=layout_image, layout_weight=layout_weight)


def image_loss(rendered: torch.Tensor, weight: torch.Tensor | None, objective: Objective,
               content_features: torch.Tensor | None,
               content_weight: torch.Tensor | None, key: int | None = None,
               region: int = 0, layout_image: torch.Tensor | None = None,
               layout_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted style loss, weighted content loss) of one image (3,h,w): the loss of every 3-D patch
    and of the 2-D ceiling (scripts/bench_quality.py), so both optimise exactly the same objective.

    `weight` (1,1,h,w) weighs the style statistics, `content_weight` the content error; `region`
    picks the style targets (with --region). `layout_image` (3,h,w) feeds the colour-layout term,
    which counts as content, over the pixels `layout_weight` marks (None: all)."""
    features = objective.vgg(rendered[None], objective.layers)
    style = rendered.new_zeros(())
    if objective.style_weight > 0:
        style = objective.style_weight * style_loss(features, weight, objective.style_of(region),
                                                    objective.layer_weights, key)
    if objective.nnfm_weight > 0:
        search = getattr(objective.vgg, "compute_dtype", torch.float32)
        nnfm = sum(nnfm_loss(features[layer], targets, weight, search_dtype=search)
                   for layer, targets in objective.nnfm_of(region).items())
        style = style + objective.nnfm_weight / len(objective.nnfm) * nnfm
    content = rendered.new_zeros(())
    if objective.content_weight > 0 and content_features is not None:
        layer = objective.loss.content_layer
        content = objective.content_weight * content_loss(features, {layer: content_features},
                                                          content_weight, layer)
    if objective.layout_weight > 0 and layout_image is not None:
        content = content + objective.layout_weight * layout_loss(rendered, layout_image, layout_weight,
                                                                  objective.loss.layout_blur)
    return style, content


def render_patch(image: torch.Tensor, patch: LevelPatch, pyramid: list[torch.Tensor] | None = None) -> torch.Tensor:
    """(3,h,w) the texture seen through a patch's UVs, uncovered pixels over a neutral grey."""
    colours = sample(image, patch.uv, footprint=patch.footprint, mask=patch.mask, pyramid=pyramid)
    return torch.where(patch.mask[None], colours, colours.new_full((), NEUTRAL_FILL))


# --- checkpoints -------------------------------------------------------------------------------

def make_checkpoint(texture: LaplacianTexture, optimizer: torch.optim.Optimizer, step: int, seed: int,
                    history: list[dict[str, float]], schedule: dict[str, int] | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    # The view schedule is a counter-based generator (seed, epoch): its whole state is seed + step,
    # given the global views per step and the step count the learning rate decays over.
    checkpoint = {"version": CHECKPOINT_VERSION, "step": step, "rng": {"seed": seed, "step": step, **(schedule or {})},
                  "texture": {k: v.detach().clone() for k, v in texture.state_dict().items()},
                  "optimizer": optimizer.state_dict(), "history": [dict(r) for r in history]}
    checkpoint.update(extra or {})
    return checkpoint


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    # Serialised in memory first: torch.save writing to a full disk raises a RuntimeError without
    # an errno, while a plain file write raises the OSError (ENOSPC) that the CLI reports.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no checkpoint to resume from")
    try:
        # weights_only: tensors and plain containers only. A checkpoint from a downloaded run folder
        # is untrusted input; a full unpickler would run whatever code it names.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(path, "refused: the checkpoint holds objects other than tensors and plain "
                               "values (possibly code); not loading it") from None
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise InputError(path, f"cannot read checkpoint ({type(exc).__name__}; truncated or not a checkpoint?)") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("version") != CHECKPOINT_VERSION:
        raise InputError(path, "not a meshstyle checkpoint of this version")
    problem = _checkpoint_problem(checkpoint)
    if problem:
        raise InputError(path, f"damaged checkpoint: {problem}")
    return checkpoint


def _checkpoint_problem(checkpoint: dict[str, Any]) -> str | None:
    """What is wrong with a loaded checkpoint's structure, or None."""
    step = checkpoint.get("step")
    if not isinstance(step, int) or step < 0:
        return "bad step"
    rng = checkpoint.get("rng")
    if not isinstance(rng, dict) or not isinstance(rng.get("seed"), int):
        return "bad seed"
    texture = checkpoint.get("texture")
    if not isinstance(texture, dict) or not texture or not all(
            isinstance(v, torch.Tensor) and v.is_floating_point() and bool(torch.isfinite(v).all())
            for v in texture.values()):
        return "texture layers missing or not finite"
    if not isinstance(checkpoint.get("optimizer"), dict):
        return "optimiser state missing"
    history = checkpoint.get("history")
    if not isinstance(history, list) or len(history) != step or not all(isinstance(r, dict) for r in history):
        return "loss history does not match the step"
    return None


def restore(checkpoint: dict[str, Any], texture: LaplacianTexture, optimizer: torch.optim.Optimizer,
            seed: int, source: Path | None) -> tuple[int, list[dict[str, float]]]:
    """Load a checkpoint into the texture and optimiser; returns (next step, history so far)."""
    where = source if source is not None else "checkpoint"
    if checkpoint["rng"]["seed"] != seed:
        raise InputError(where, f"was written with seed {checkpoint['rng']['seed']}, not {seed}")
    expected = {k: tuple(v.shape) for k, v in texture.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["texture"].items()}
    if expected != found:
        raise InputError(where, "texture layers differ from this config (texture size or levels changed)")
    texture.load_state_dict(checkpoint["texture"])
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise InputError(where, f"optimiser state does not fit this run ({type(exc).__name__})") from None
    return int(checkpoint["step"]), [dict(r) for r in checkpoint["history"]]


def check_schedule(checkpoint: dict[str, Any], schedule: dict[str, int], source: Path | None) -> None:
    """A resume must draw the same views: the same global views per step (views_per_step x
    torchrun ranks). Older checkpoints do not record it and were single-process runs."""
    stored = checkpoint.get("rng", {}).get("views_per_step", schedule["views_per_step"])
    if stored != schedule["views_per_step"]:
        raise InputError(source if source is not None else "checkpoint",
                         f"was written by a run of {stored} views per step, this one has "
                         f"{schedule['views_per_step']} (views_per_step x torchrun ranks): resume with the "
                         f"same number of ranks and views_per_step")


# --- Ctrl-C between patches --------------------------------------------------------------------

@dataclass
class InterruptFlag:
    requested: bool = False
    presses: int = field(default=0)
    signum: int | None = None          # SIGINT or SIGTERM, whichever came first


# SIGTERM is what schedulers and `timeout` send: it gets Ctrl-C's treatment (checkpoint, resumable).
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[InterruptFlag]:
    """Turn the first SIGINT/SIGTERM into a flag the loop checks between patches; a second one
    raises at once."""
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        flag.presses += 1
        flag.requested = True
        flag.signum = flag.signum or signum
        if flag.presses > 1:
            raise Interrupted(flag.signum)

    previous = {signum: signal.signal(signum, handler) for signum in DEFERRED_SIGNALS}
    try:
        yield flag
    finally:
        for signum, old_handler in previous.items():
            signal.signal(signum, old_handler)


def steps_per_second(history: list[StepRecord]) -> float:
    seconds = sum(r.seconds for r in history)
    return len(history) / seconds if seconds > 0 else math.nan
