"""Ablation of StyleMesh's depth- and angle-aware optimisation, measured with the circles metric.

On the built-in demo room with the built-in `circles` style, four stylizations share one seed and
budget and differ only in `loss.depth_aware` / `loss.angle_aware`:

    full        depth-aware patches and angle weights (the method)
    angle-only  angle weights, one image level (no depth split)
    depth-only  depth split, no angle weights
    2d-only     neither: plain 2-D style transfer per view

Each result is rendered from the same held-out walkthrough views (never trained on, drawn from a
separate seed, larger than the training views so discs span enough pixels) and measured with
`meshstyle.evaluate.metrics`'s circles metric; the figures are printed side by side. Expected: the full
method's `radius_spread` and `radius_depth_corr` are lower than 2d-only's (strokes keep one size
on the surface, whatever the distance).

    python scripts/ablation.py                  # ~10-20 min on 2 cores
    python scripts/ablation.py --quick          # smoke test: quick_config, a few minutes
    python scripts/ablation.py --iters 300 --out out/ablation --json out/ablation/circles.json
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from meshstyle.views import cameras as camera_paths
from meshstyle.config import StylizeConfig
from meshstyle.evaluate.metrics import evaluate, format_table
from meshstyle.common.io import write_image, write_json
from meshstyle.pipeline import quick_config, stylize
from meshstyle.common.progress import log
from meshstyle.outputs.render import render_views

VARIANTS: dict[str, tuple[bool, bool]] = {   # name: (depth_aware, angle_aware)
    "full": (True, True),
    "angle-only": (False, True),
    "depth-only": (True, False),
    "2d-only": (False, False),
}
FIGURES = ("radius_median_m", "radius_spread", "stretch_median", "radius_depth_corr",
           "stretch_angle_corr", "count")


def base_config(args: argparse.Namespace) -> StylizeConfig:
    """A modest budget: enough steps for discs to form, ~3-5 min per variant on 2 cores."""
    config = quick_config() if args.quick else StylizeConfig()
    if not args.quick:
        config.cameras.views = 12
        config.texture.size = 1024
        config.optim.iters = 120
    if args.iters is not None:
        config.optim.iters = args.iters
    if args.views is not None:
        config.cameras.views = args.views
    config.seed = args.seed
    return config


def variant_config(base: StylizeConfig, depth_aware: bool, angle_aware: bool) -> StylizeConfig:
    return dataclasses.replace(base, loss=dataclasses.replace(base.loss, depth_aware=depth_aware,
                                                              angle_aware=angle_aware))


def side_by_side(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Rows: circle figures; columns: variants."""
    names = list(results)
    header = ["figure"] + names
    rows = []
    for figure in FIGURES:
        row = [figure]
        for name in names:
            circles = results[name]["circles"]
            value = circles.get(figure)
            row.append("-" if value is None else (f"{value:.0f}" if figure == "count" else f"{value:.4f}"))
        rows.append(row)
    skipped = [f"{name}: {results[name]['circles']['skipped']}" for name in names
               if "skipped" in results[name]["circles"]]
    widths = [max(len(line[i]) for line in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in [header] + rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + skipped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=None, help="optimisation steps per variant")
    parser.add_argument("--views", type=int, default=None, help="training views per variant")
    parser.add_argument("--quick", action="store_true", help="quick_config(): a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-views", type=int, default=8, help="held-out walkthrough views")
    parser.add_argument("--eval-height", type=int, default=480, help="image height of the held-out views")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help="folder for textures, renders, results.json")
    parser.add_argument("--json", type=Path, default=None, help="write the nested figures as JSON here")
    args = parser.parse_args()

    import scenes

    scene = scenes.demo_room(args.seed)
    base = base_config(args)
    # Held-out views from their own seed, so every variant is judged on the very same views.
    eval_rng = np.random.default_rng(args.seed + 1_000_003)
    holdout = camera_paths.walkthrough(scene, args.eval_views, eval_rng, width=round(args.eval_height * 4 / 3),
                                       height=args.eval_height, fov_deg=base.cameras.fov_deg)

    results: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    for name in args.variants:
        depth_aware, angle_aware = VARIANTS[name]
        log(f"ablation: {name} (depth_aware={depth_aware}, angle_aware={angle_aware}, "
            f"{base.optim.iters} iters, {base.cameras.views} views)")
        started = time.perf_counter()
        result = stylize(scene, "circles", variant_config(base, depth_aware, angle_aware))
        seconds[name] = time.perf_counter() - started
        results[name] = evaluate(result.mesh, original=result.original, cameras=result.cameras,
                                 holdout=holdout, style_image=result.style_image, metrics=["circles"])
        log(f"ablation: {name} took {seconds[name]:.0f} s\n{format_table(results[name])}")
        if args.out is not None:
            write_image(args.out / f"texture_{name}.png", result.mesh.texture)
            for index, frame in enumerate(render_views(result.mesh, holdout[:2], cache=False)):
                write_image(args.out / f"view{index}_{name}.png", frame)

    print(f"circles metric on {len(holdout)} held-out walkthrough views "
          f"({holdout[0].width}x{holdout[0].height}), {base.optim.iters} iters, seed {args.seed}")
    print(side_by_side(results))
    print("seconds per variant: " + ", ".join(f"{name} {value:.0f}" for name, value in seconds.items()))
    report = {"config": base.to_dict(), "seconds": seconds, "results": results}
    for path in [p for p in (args.json, args.out / "results.json" if args.out else None) if p is not None]:
        write_json(path, report)


if __name__ == "__main__":
    main()
