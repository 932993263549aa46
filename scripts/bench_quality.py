"""Quality benchmark: stylized scenes scored against a per-view 2-D ceiling, with wall time and memory.

    .venv/bin/python scripts/bench_quality.py                      # defaults, demo-room + redkitchen, 2 styles
    .venv/bin/python scripts/bench_quality.py --scenes demo-room --styles starry_night \\
        --set loss.nnfm_weight=1 --set optim.iters=100 --label nnfm   # one experimental setting
    .venv/bin/python scripts/bench_quality.py --speed               # demo, demo --quick timings too
    .venv/bin/python scripts/bench_quality.py --scenes demo-room --seed 0 1 2   # each row at 3 seeds, with the spread
    .venv/bin/python scripts/bench_quality.py --from-json docs/bench/*.json \\
        --markdown docs/bench_quality.md --readme README.md          # the README table, from the rows kept

Every row in README.md is kept as the --json file its run wrote, in docs/bench/NN-<label>.json
(NN: the table's order); tests/test_bench_quality.py checks the table is what those files give.

For every (scene, style, setting) the script
1. runs `meshstyle stylize` in a child process (its own wall time and peak resident memory, measured
   with wait4, so they are what a user sees: start-up, atlas, rasterizing, optimisation, export);
2. scores the run's held-out views with `meshstyle.evaluate` (never trained on): style distance
   (`style.swd`, sliced Wasserstein over VGG features), content distance (`content.feature_distance`
   against the original texture), seam ratio relative to the original texture
   (`seams.ratio / seams.original_ratio`) and the share of used texels painted
   (`coverage.painted_share` where eval has it, else `coverage.seen_share`);
3. computes the 2-D ceiling: each held-out view, rendered with the texture the optimisation starts
   from (the palette step included), is stylized as a plain 2-D image with the same VGG, the same
   loss and the same content target (the original texture seen from that view, through the palette
   map), one view at a time, Adam for `--ceiling-steps` steps, no 3-D constraint; the results are
   scored with the same metrics on the same pixels. "The same loss" is the run's whole loss
   (`--ceiling patches`, the default): the view is split into the run's depth levels and
   view-angle weights exactly as a training view is (`pipeline.train_view`), and the free pixels
   live at the finest level's size, each coarser level being their antialiased downsampling; so
   far surfaces get strokes of the same world size as in 3-D. `--ceiling flat` is the earlier,
   cheaper ceiling: one image at the scored size with the loss on all of it (no depth levels, no
   angle weights), which paints every stroke at one pixel size and so is a different objective
   whenever the run is depth-aware;
4. prints a table: style and content distance, both also relative to the ceiling (style/ceiling
   should be <= 1.25, content/ceiling <= 1), seam ratio, painted share, wall time, peak memory.

Ceiling results are cached under $MESHSTYLE_CACHE/bench_quality keyed by the loss config and the
view, so comparing several optimiser settings re-optimises only the 3-D runs.
Run folders go to --out (default out/bench_quality/<label>/<scene>-<style>).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshstyle.config import StylizeConfig, flatten, set_key  # noqa: E402
from meshstyle.common.io import write_json  # noqa: E402
from meshstyle.evaluate.content import content_metrics  # noqa: E402
from meshstyle.evaluate.features import CONTENT_LAYER, FeatureCache  # noqa: E402
from meshstyle.evaluate.metrics import evaluate  # noqa: E402
from meshstyle.evaluate.rendering import RenderedView, Renderer  # noqa: E402
from meshstyle.evaluate.style import style_metrics  # noqa: E402
from meshstyle.outputs.run_folder import load_result  # noqa: E402
from meshstyle.outputs.render import render_fragments, write_column_sheet  # noqa: E402
from meshstyle.pipeline import nnfm_targets, pyramid_heights, texture_sample, train_view  # noqa: E402
from meshstyle.raster.rasterizer import view_pyramids  # noqa: E402
from meshstyle.stylization.losses import projection_key, style_targets  # noqa: E402
from meshstyle.stylization.optimize import NEUTRAL_FILL, Objective, TrainView, image_loss  # noqa: E402
from meshstyle.stylization.paint import ColorTransform, palette_transform  # noqa: E402
from meshstyle.stylization.vgg import load_vgg  # noqa: E402

SCENES = {"demo-room": "demo-room", "redkitchen": "/work/shared/scans/redkitchen"}
STYLES = ("starry_night", "great_wave")
STYLE_DIR_CANDIDATES = (ROOT.parent / "shared" / "styles", Path("/work/shared/styles"))
COLUMNS = ("scene", "style", "setting", "ceiling", "style_swd", "ceiling_swd", "style_x", "content", "ceiling_content",
           "content_x", "seam_x", "painted", "wall_s", "peak_gb")
STYLE_BOUND, CONTENT_BOUND = 1.25, 1.0


def style_path(name: str) -> str:
    """A style from the shared styles folder by stem, a path, or a built-in style name."""
    if Path(name).is_file():
        return name
    for folder in STYLE_DIR_CANDIDATES:
        for found in sorted(folder.glob(f"{name}.*")) if folder.is_dir() else []:
            return str(found)
    return name


def scene_path(name: str) -> str:
    if name in SCENES and (name == "demo-room" or Path(SCENES[name]).exists()):
        return SCENES[name]
    local = ROOT.parent / "shared" / "scans" / name
    return str(local) if local.exists() else name


@dataclass
class Child:
    wall_s: float
    peak_gb: float
    returncode: int


def config_of(values: dict, source: Path) -> StylizeConfig:
    """The config a run folder's run.json records."""
    config = StylizeConfig()
    for key, value in flatten(values).items():
        set_key(config, key, value, str(source))
    return config


def run_child(command: list[str], log_path: Path) -> Child:
    """Run a command, measuring its wall time and its peak resident memory (wait4's ru_maxrss)."""
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Child(time.perf_counter() - started, usage.ru_maxrss / 1024 ** 2, process.returncode)


def quick_overrides() -> list[str]:
    """`--set` items that turn the defaults into `quick_config()` (what `demo --quick` runs)."""
    from meshstyle.config import flatten
    from meshstyle.pipeline import quick_config

    default, quick = flatten(StylizeConfig().to_dict()), flatten(quick_config().to_dict())
    items = []
    for key, value in quick.items():
        if value != default[key]:
            value = ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else value
            items.append(f"{key}={value}")
    return items


def meshstyle_command() -> list[str]:
    return [sys.executable, "-m", "meshstyle"]


# --------------------------------------------------------------------------------------------
# 2-D ceiling

def ceiling_key(config: dict, style: np.ndarray, camera, texture: np.ndarray, steps: int,
                mode: str = "flat", depth_reference: float = 0.0) -> str:
    # The ceiling's content is always the mesh's own colours (`patch_problem`), so the run's
    # content target does not change it; "auto" keeps the keys cached before this rule.
    loss = dict(config["loss"], content_target="auto")
    loss.pop("layout_target", None)   # the same reason: the ceiling's layout is the mesh's colours too
    loss["tv_weight"] = 0.0   # a texture prior: the ceiling's pixels have no texture (keys as before)
    if not loss.get("layout_weight"):   # keys cached before the colour-layout term still hit while it is off
        loss.pop("layout_weight", None)
        loss.pop("layout_blur", None)
    keys = {"loss": loss, "precision": config["optim"]["precision"],
            "steps": steps, "camera": camera.to_dict()}
    if mode != "flat":   # flat keys stay as they were, so earlier cached ceilings still hit
        keys.update(mode=mode, raster=config["raster"], depth_reference=round(depth_reference, 6))
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(style, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(texture[::7, ::7], dtype=np.float32).tobytes())
    return digest.hexdigest()[:20]


def adam_on_pixels(start: torch.Tensor, loss: Callable[[torch.Tensor, int], torch.Tensor], steps: int, lr: float,
                   lr_decay: float) -> tuple[torch.Tensor, list[float]]:
    """Adam on an image's pixels with the run's learning-rate schedule, clamped to [0,1] after each
    step; `loss(pixels, step)` is the objective. Returns the pixels and the loss per step."""
    pixels = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=lr)
    history = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_decay ** (step / max(1, steps - 1))
        total = loss(pixels, step)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        with torch.no_grad():
            pixels.clamp_(0.0, 1.0)
        history.append(float(total.detach()))
    return pixels.detach(), history


def stylize_2d(content: torch.Tensor, start: torch.Tensor, mask: torch.Tensor, objective: Objective,
               steps: int, lr: float, lr_decay: float) -> tuple[torch.Tensor, list[float]]:
    """One view stylized as a plain image (the flat ceiling): the loss on the whole image at one size."""
    weight = mask.to(torch.float32)[None, None]
    layer = objective.loss.content_layer
    with torch.no_grad():
        target = objective.vgg(content[None], (layer,))[layer] if objective.content_weight > 0 else None

    def loss(pixels: torch.Tensor, step: int) -> torch.Tensor:
        image = torch.where(mask[None], pixels, pixels.new_full((), NEUTRAL_FILL))
        style, content_term = image_loss(image, weight, objective, target, weight, key=step,
                                         layout_image=content, layout_weight=weight)
        return style + content_term

    return adam_on_pixels(start, loss, steps, lr, lr_decay)


def resized(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3,h,w) -> (3,*size), antialiased when shrinking: what a mip-mapped lookup of a finer image gives."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def stylize_2d_patches(start: torch.Tensor, view: TrainView, level_sizes: list[tuple[int, int]],
                       objective: Objective, steps: int, lr: float, lr_decay: float
                       ) -> tuple[torch.Tensor, list[float]]:
    """One view stylized as a plain image under the 3-D run's whole loss (the patch ceiling): the
    pixels live at the finest level's size, each depth-split patch reads its level's downsampling of
    them, and the patches' losses are weighted by their shares as `optimize.accumulate_gradients`
    weighs them."""
    layer = objective.loss.content_layer
    with torch.no_grad():
        content = [objective.vgg(target.content_image[None], (layer,))[layer]
                   if target.content_image is not None and objective.content_weight > 0 else None
                   for target in view.targets]

    def loss(pixels: torch.Tensor, step: int) -> torch.Tensor:
        levels = {level: resized(pixels, level_sizes[level]) for level in {t.patch.level for t in view.targets}}
        total = pixels.new_zeros(())
        for index, (target, features) in enumerate(zip(view.targets, content)):
            patch = target.patch
            y0, y1, x0, x1 = patch.box
            crop = levels[patch.level][:, y0:y1, x0:x1]
            image = torch.where(patch.mask[None], crop, crop.new_full((), NEUTRAL_FILL))
            layout_image, layout_weight = target.layout()
            style, content_term = image_loss(image, patch.weight, objective, features, target.content_weight,
                                             key=projection_key(step, 0, index), region=patch.region,
                                             layout_image=layout_image, layout_weight=layout_weight)
            total = total + patch.share * (style + content_term)
        return total

    return adam_on_pixels(start, loss, steps, lr, lr_decay)


def ceiling_objective(style_image: np.ndarray, config: StylizeConfig, device: str = "cpu") -> Objective:
    """The run's loss (VGG, style targets of the style image as the run used it, NNFM targets)."""
    vgg = load_vgg(device=device)
    style_chw = torch.from_numpy(np.ascontiguousarray(style_image, dtype=np.float32)).permute(2, 0, 1).to(device)
    targets = style_targets(vgg, style_chw, config.loss.style_layers, config.loss.style_scales, config.loss.statistic)
    return Objective(vgg=vgg, style=targets, loss=config.loss, nnfm=nnfm_targets(vgg, style_chw, config))


def patch_problem(rasterizer, camera, config: StylizeConfig, depth_reference: float, start_texture: torch.Tensor
                  ) -> tuple[TrainView, torch.Tensor, list[tuple[int, int]]]:
    """One held-out view as the run would train on it (depth-split, angle-weighted patches with the
    start texture as content), the start texture seen at its finest level, and its levels' sizes."""
    pyramid = view_pyramids(rasterizer, [camera], pyramid_heights(config))[0]
    train = train_view(pyramid, start_texture, None, "mesh", config, depth_reference)
    first = render_fragments(start_texture, pyramid.levels[-1])
    return train, first, [(level.height, level.width) for level in pyramid.levels]


def ceiling(loaded, config: StylizeConfig, config_dict: dict, steps: int, cache_dir: Path,
            features: FeatureCache, device: str = "cpu", mode: str = "patches") -> dict[str, float]:
    """Style and content distance of the held-out views stylized one by one as 2-D images
    (`mode`: "patches", the run's whole depth-split loss, or "flat", module docstring)."""
    cameras = loaded.holdout or loaded.cameras
    original = loaded.original
    palette = ColorTransform.identity()
    original_chw = torch.from_numpy(np.ascontiguousarray(original.texture, dtype=np.float32)).permute(2, 0, 1)
    if not config.loss.preserve_color and config.loss.palette:
        sample, used = texture_sample(original_chw, original.uv)
        style_chw = torch.from_numpy(np.ascontiguousarray(loaded.style_image, dtype=np.float32)).permute(2, 0, 1)
        palette = palette_transform(sample, style_chw, used, strength=min(1.0, config.loss.style_strength))
    renderer = Renderer(original)
    targets = renderer.render(cameras, original.texture, desc="ceiling targets")
    depth_reference = float(loaded.run.info.get("reference_depth_m", 0.0) or 0.0)
    if mode == "patches" and depth_reference <= 0:
        raise SystemExit(f"{loaded.path / 'run.json'}: no info.reference_depth_m, which the patch ceiling needs")
    start_texture = palette(original_chw)
    objective = None
    results: list[RenderedView] = []
    for view in targets:
        mask = view.fragments.mask
        key = ceiling_key(config_dict, loaded.style_image, view.camera, original.texture, steps, mode, depth_reference)
        path = cache_dir / f"{key}.npy"
        if path.is_file():
            image = np.load(path)
        else:
            if objective is None:
                objective = ceiling_objective(loaded.style_image, config, device)
            started = time.perf_counter()
            if mode == "patches":
                train, first, sizes = patch_problem(renderer.rasterizer, view.camera, config, depth_reference,
                                                    start_texture)
                result, history = stylize_2d_patches(first.to(device), train.to(device), sizes, objective, steps,
                                                     config.optim.lr, config.optim.lr_decay)
                result = resized(result, (view.camera.height, view.camera.width))
            else:
                content = palette(torch.from_numpy(view.image).permute(2, 0, 1).contiguous()).to(device)
                result, history = stylize_2d(content, content, mask.to(device), objective, steps, config.optim.lr,
                                             config.optim.lr_decay)
            result = result.cpu()
            quarter = max(1, steps // 4)
            change = (np.mean(history[-quarter * 2:-quarter]) - np.mean(history[-quarter:])) / max(1e-12, history[0])
            print(f"  ceiling view {len(results) + 1}/{len(targets)} ({mode}): loss {history[0]:.3g} -> "
                  f"{history[-1]:.3g} (last quarter changed {change:.1%} of the start), "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            image = result.permute(1, 2, 0).numpy()
            image = np.where(mask.numpy()[..., None], image, 1.0).astype(np.float32)
            cache_dir.mkdir(parents=True, exist_ok=True)
            np.save(path, image)
        results.append(RenderedView(camera=view.camera, fragments=view.fragments, image=image))
    style = style_metrics(results, loaded.style_image, features=features)
    content = content_metrics(results, targets, features=features)
    return {"swd": style.get("swd", float("nan")), "content": content.get("feature_distance", float("nan")),
            "ceiling_images": results}


# --------------------------------------------------------------------------------------------

def bench_one(scene: str, style: str, label: str, overrides: list[str], args: argparse.Namespace,
              with_ceiling: bool = True, seed: int = 0) -> dict:
    out = Path(args.out) / label / f"{scene}-{style}"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = meshstyle_command() + ["stylize", scene_path(scene), "--style", style_path(style), "--out", str(out),
                                     "--overwrite", "--seed", str(seed)]
    for item in overrides:
        command += ["--set", item]
    if args.device != "cpu":
        command += ["--device", args.device]
    print(f"[{label}] {scene} x {style}: {' '.join(command[3:])}", flush=True)
    if args.reuse and (out / "run.json").is_file():
        child = Child(float("nan"), float("nan"), 0)   # scored again, not re-run: no wall time
    else:
        child = run_child(command, out.parent / f"{scene}-{style}.log")
    if child.returncode != 0:
        print(f"  stylize failed (exit {child.returncode}); see {out.parent / f'{scene}-{style}.log'}")
        return {"scene": scene, "style": style, "setting": label, "failed": child.returncode}
    loaded = load_result(out)
    config = config_of(loaded.run.config, out / "run.json")
    # Score at the optimiser's scale: a scan's photo cameras are 480 px high, where one 2-D ceiling
    # step costs ~10x one at 192 px; both the 3-D result and the ceiling see the same scaled views.
    height = args.eval_height or config.raster.image_height
    # --score-training: the training views instead, each against its own ceiling, which tells
    # generalisation to new viewpoints apart from what the shared texture itself loses.
    scored = loaded.cameras if args.score_training else loaded.holdout
    loaded.holdout = [camera.scaled(height) for camera in scored[:args.views]]
    features = FeatureCache(("relu1_1", "relu2_1", "relu3_1", "relu4_1", CONTENT_LAYER))
    report = evaluate(loaded.mesh, original=loaded.original, cameras=loaded.cameras, holdout=loaded.holdout or None,
                      style_image=loaded.style_image, metrics=("style", "content", "seams", "coverage"))
    cache = Path(os.environ.get("MESHSTYLE_CACHE", Path.home() / ".cache" / "meshstyle")) / "bench_quality"
    top = {"swd": float("nan"), "content": float("nan")}
    if with_ceiling:
        top = ceiling(loaded, config, loaded.run.config, args.ceiling_steps, cache, features, args.device,
                      args.ceiling)
        write_ceiling_sheet(out / "ceiling_sheet.png", loaded, top.pop("ceiling_images"))
    coverage = report.get("coverage", {})
    seams = report.get("seams", {})
    row = {
        "scene": scene, "style": style, "setting": label, "ceiling": f"{args.ceiling}/{args.ceiling_steps}" if with_ceiling else "-",
        "style_swd": report["style"].get("swd", float("nan")),
        "ceiling_swd": top["swd"],
        "content": report["content"].get("feature_distance", float("nan")),
        "ceiling_content": top["content"],
        "seam_x": (seams["ratio"] / seams["original_ratio"]) if "original_ratio" in seams else float("nan"),
        "painted": coverage.get("painted_share", coverage.get("seen_share", float("nan"))),
        "wall_s": child.wall_s, "peak_gb": child.peak_gb,
        "ssim": report["content"].get("ssim", float("nan")),
        "seed": seed,
    }
    row["style_x"] = row["style_swd"] / row["ceiling_swd"]
    row["content_x"] = row["content"] / row["ceiling_content"]
    write_json(out / "bench.json", row)
    return row


def write_ceiling_sheet(path: Path, loaded, images: list[RenderedView]) -> None:
    """3-D result | 2-D ceiling per held-out view, for judging by eye."""
    from meshstyle.common.io import write_image

    renderer = Renderer(loaded.mesh)
    rendered = renderer.render([view.camera for view in images], loaded.mesh.texture, desc="sheet")
    rows = [np.concatenate([a.image, np.ones((a.image.shape[0], 4, 3), np.float32), b.image], axis=1)
            for a, b in zip(rendered, images)]
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 4), (0, width - row.shape[1]), (0, 0)), constant_values=1.0) for row in rows]
    write_image(path, np.concatenate(rows, axis=0))


def write_strength_sheet(path: Path, runs: list[Path], strengths: list[float], height: int = 200,
                         views: int = 2) -> None:
    """One row per held-out view: the original colours, then the result at each style strength."""
    first = load_result(runs[0])
    cameras = [camera.scaled(height) for camera in (first.holdout or first.cameras)[:views]]
    columns = [("original", Renderer(first.original).render(cameras, first.original.texture, desc="sheet"))]
    for run, value in zip(runs, strengths):
        loaded = load_result(run)
        columns.append((f"style_strength {value:g}", Renderer(loaded.mesh).render(cameras, loaded.mesh.texture,
                                                                                   desc="sheet")))
    write_column_sheet(path, [(title, [view.image for view in rendered]) for title, rendered in columns])


def speed(args: argparse.Namespace) -> list[dict]:
    """`meshstyle demo` and `meshstyle demo --quick` as a user runs them: wall time and peak memory."""
    rows = []
    for quick in (True, False):
        out = Path(args.out) / "speed" / ("demo-quick" if quick else "demo")
        out.parent.mkdir(parents=True, exist_ok=True)
        command = meshstyle_command() + ["demo", "--out", str(out), "--overwrite"] + (["--quick"] if quick else [])
        print(f"[speed] {' '.join(command[3:])}", flush=True)
        child = run_child(command, out.parent / f"{out.name}.log")
        rows.append({"command": "meshstyle " + " ".join(command[3:]).replace(str(out), "OUT"),
                     "wall_s": child.wall_s, "peak_gb": child.peak_gb, "exit": child.returncode})
    return rows


def format_value(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return "nan" if np.isnan(value) else (f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}")
    return str(value)


def table(rows: list[dict], markdown: bool) -> str:
    shown = [row for row in rows if "failed" not in row]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
        for row in shown:
            lines.append("| " + " | ".join(format_value(row[c]) for c in COLUMNS) + " |")
    else:
        cells = [list(COLUMNS)] + [[format_value(row[c]) for c in COLUMNS] for row in shown]
        widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
    for row in rows:
        if "failed" in row:
            lines.append(f"{row['scene']} x {row['style']} [{row['setting']}]: stylize failed (exit {row['failed']})")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> list[str]:
    notes = []
    for row in rows:
        if "failed" in row or np.isnan(row["style_x"]):
            continue
        ok = row["style_x"] <= STYLE_BOUND and row["content_x"] <= CONTENT_BOUND
        notes.append(f"{row['scene']} x {row['style']} [{row['setting']}]: style {row['style_x']:.2f}x, "
                     f"content {row['content_x']:.2f}x of the 2-D ceiling -> {'meets' if ok else 'misses'} "
                     f"(style <= {STYLE_BOUND}x, content <= {CONTENT_BOUND}x)")
    return notes


def seed_spread(rows: list[dict]) -> list[str]:
    """One line per scene, style and setting run at several seeds (rows LABEL-sN): the range and
    mean of each ratio and how many seeds meet both bars. With a few held-out views a row moves by
    more between seeds than most settings move it, so a verdict means something only over seeds."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        suffix = f"-s{row.get('seed')}"
        # Only rows named for their seed: one-seed runs of a label in other rounds ran other code.
        if "failed" in row or np.isnan(row["style_x"]) or not row["setting"].endswith(suffix):
            continue
        groups.setdefault((row["scene"], row["style"], row["setting"].removesuffix(suffix)), []).append(row)
    notes = []
    for (scene, style, setting), group in groups.items():
        if len(group) < 2:
            continue
        style_x = np.array([row["style_x"] for row in group])
        content_x = np.array([row["content_x"] for row in group])
        meets = int(np.sum((style_x <= STYLE_BOUND) & (content_x <= CONTENT_BOUND)))
        notes.append(f"{scene} x {style} [{setting}] over {len(group)} seeds: "
                     f"style {style_x.min():.2f}-{style_x.max():.2f}x (mean {style_x.mean():.2f}), "
                     f"content {content_x.min():.2f}-{content_x.max():.2f}x (mean {content_x.mean():.2f}); "
                     f"meets both bars at {meets} of {len(group)} seeds")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=list(SCENES))
    parser.add_argument("--styles", nargs="+", default=list(STYLES))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the 3-D runs (and the ceiling's loss), repeatable")
    parser.add_argument("--label", default="defaults", help="name of this setting in the table")
    parser.add_argument("--quick", action="store_true", help="the 3-D runs use `demo --quick`'s settings")
    parser.add_argument("--ceiling-steps", type=int, default=300)
    parser.add_argument("--ceiling", choices=("patches", "flat"), default="patches",
                        help="2-D ceiling objective: the run's depth-split loss (patches) or one flat image (flat)")
    parser.add_argument("--views", type=int, default=4, help="held-out views scored (and stylized in 2-D)")
    parser.add_argument("--eval-height", type=int, default=0,
                        help="height of the scored views (default: the run's raster.image_height)")
    parser.add_argument("--strengths", type=float, nargs="+", help="also run these loss.style_strength values "
                        "on the first scene and style (rows strength-X)")
    parser.add_argument("--no-ceiling", action="store_true", help="score the 3-D runs only (ceiling columns nan)")
    parser.add_argument("--score-training", action="store_true",
                        help="score the first --views training views instead of held-out ones (a diagnosis)")
    parser.add_argument("--reuse", action="store_true", help="score existing run folders instead of re-running")
    parser.add_argument("--only-strengths", action="store_true", help="skip the main rows, run only --strengths")
    parser.add_argument("--strength-sheet", help="JPEG: original | each strength, for two held-out views")
    parser.add_argument("--speed", action="store_true", help="also time `meshstyle demo` and `demo --quick`")
    parser.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="seed of the runs (their training and held-out views, the optimiser); several "
                        "run every row once per seed, as setting LABEL-sN, and print each ratio's spread")
    parser.add_argument("--device", default="cpu", help="cpu | cuda: the 3-D runs and the 2-D ceiling run there")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench_quality"))
    parser.add_argument("--markdown", help="also write the tables as markdown to this file (the README's copy)")
    parser.add_argument("--readme", help="with --markdown: also replace the block between the bench markers in "
                        "this file (README.md) by the markdown")
    parser.add_argument("--json", help="write all rows as JSON to this file")
    parser.add_argument("--from-json", nargs="+", metavar="FILE",
                        help="run nothing: print (and with --markdown write) the tables of earlier --json files")
    args = parser.parse_args(argv)
    if args.from_json:
        return tables_from_json(args)
    overrides = (quick_overrides() if args.quick else []) + args.set
    several = len(args.seed) > 1
    rows = [bench_one(scene, style, f"{args.label}-s{seed}" if several else args.label, overrides, args,
                      with_ceiling=not args.no_ceiling, seed=seed)
            for seed in args.seed for scene in args.scenes for style in args.styles if not args.only_strengths]
    print()
    print(table(rows, markdown=False))
    for note in verdict(rows) + seed_spread(rows):
        print(note)
    if args.strengths:
        scene, style = args.scenes[0], args.styles[0]
        # Without the ceiling: these rows show how far each strength moves style and content.
        strength_rows = [bench_one(scene, style, f"strength-{value:g}", overrides + [f"loss.style_strength={value:g}"],
                                   args, with_ceiling=False, seed=args.seed[0]) for value in args.strengths]
        rows += strength_rows
        print(table(strength_rows, markdown=False))
        if args.strength_sheet:
            write_strength_sheet(Path(args.strength_sheet), [Path(args.out) / f"strength-{value:g}" / f"{scene}-{style}"
                                                            for value in args.strengths], args.strengths)
    speed_rows = speed(args) if args.speed else []
    if speed_rows:
        print()
        for row in speed_rows:
            print(f"{row['command']}: {row['wall_s']:.0f} s wall, peak {row['peak_gb']:.2f} GB, exit {row['exit']}")
    if args.markdown:
        write_markdown(Path(args.markdown), rows, speed_rows, [command_line()])
    if args.json:
        write_json(Path(args.json), {"quality": rows, "speed": speed_rows, "command": command_line()})
    return 0


def command_line() -> str:
    return "python scripts/bench_quality.py " + " ".join(sys.argv[1:])


def tables_from_json(args: argparse.Namespace) -> int:
    rows, speed_rows, commands = [], [], []
    for path in args.from_json:
        data = json.loads(Path(path).read_text())
        # JSON has no NaN: write_json stored missing figures (no ceiling, re-scored runs) as null.
        rows += [{"ceiling": "flat/?", **{key: float("nan") if value is None else value for key, value in row.items()}}
                 for row in data["quality"]]   # rows from before the patch ceiling had the flat one
        speed_rows += data["speed"]
        commands.append(data.get("command", "?"))
    print(table(rows, markdown=False))
    for note in verdict(rows) + seed_spread(rows):
        print(note)
    if args.markdown:
        write_markdown(Path(args.markdown), rows, speed_rows, commands)
        if args.readme:
            update_readme(Path(args.readme), Path(args.markdown).read_text())
    return 0


def update_readme(path: Path, block: str) -> None:
    """Replace the README's bench block (between the markers) by `block`, atomically."""
    text = path.read_text()
    start, end = text.find(MARKDOWN_BEGIN), text.find(MARKDOWN_END)
    if start < 0 or end < 0:
        raise SystemExit(f"{path}: no bench_quality markers to replace")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text[:start] + block.strip() + text[end + len(MARKDOWN_END):])
    tmp.replace(path)


def write_markdown(path: Path, rows: list[dict], speed_rows: list[dict], commands: list[str]) -> None:
    """The block README.md carries verbatim (tests/test_bench_quality.py checks they agree)."""
    lines = [MARKDOWN_BEGIN, "", table(rows, markdown=True), ""]
    if speed_rows:
        lines += ["| command | wall_s | peak_gb |", "|---|---|---|"]
        lines += [f"| `{row['command']}` | {row['wall_s']:.0f} | {row['peak_gb']:.2f} |" for row in speed_rows]
        lines.append("")
    spread = seed_spread(rows)
    if spread:
        lines += ["Over seeds (rows named LABEL-sN):", ""] + [f"- {note}" for note in spread] + [""]
    lines += ["Measured by:", ""] + [f"    {command}" for command in commands] + ["", MARKDOWN_END]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


MARKDOWN_BEGIN = "<!-- bench_quality:begin (written by scripts/bench_quality.py --markdown; do not edit) -->"
MARKDOWN_END = "<!-- bench_quality:end -->"


if __name__ == "__main__":
    sys.exit(main())
