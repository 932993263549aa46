"""Cost of one optimisation step on demo-room against a bare VGG-19 forward+backward.

    .venv/bin/python scripts/bench_step.py                     # step vs bare VGG at height 256
    .venv/bin/python scripts/bench_step.py --precision bfloat16 --channels-last
    .venv/bin/python scripts/bench_step.py --memory            # peak RSS of a 4096^2, 4-level run
    .venv/bin/python scripts/bench_step.py --compare-channels-last --image-height 192 --views 13 --steps 13
                                              # NCHW vs NHWC steps, interleaved A/B/A/B in one process

The bare VGG baseline runs the same crops (same sizes, same layers) on random images, so the ratio
is what sampling, masks, Grams, losses and the optimiser add on top of the network itself.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from meshstyle import scenes
from meshstyle.config import StylizeConfig
from meshstyle.stylization.optimize import InterruptFlag, accumulate_gradients, optimize, precompute_content
from meshstyle.pipeline import prepare
from meshstyle.stylization.texture import LaplacianTexture
from meshstyle.stylization.vgg import load_vgg


def main() -> None:
    from meshstyle.common.allocator import tune_allocator

    tune_allocator()  # as the CLI does: warm heap pages for per-view arrays
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-height", type=int, default=256)
    parser.add_argument("--levels", type=int, default=None)
    parser.add_argument("--near-levels", type=int, default=None)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default=None)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--memory", action="store_true", help="4096^2 texture, 4 Laplacian levels: peak RSS")
    parser.add_argument("--compare-channels-last", action="store_true",
                        help="median step without and with channels_last, alternating twice (docs/TRAPS.md: "
                             "runs minutes apart mislead on a noisy machine)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    config = StylizeConfig(seed=0)
    config.cameras.views = args.views
    config.cameras.holdout = 0
    config.raster.image_height = args.image_height
    if args.levels is not None:
        config.raster.levels = args.levels
    if args.near_levels is not None:
        config.raster.near_levels = args.near_levels
    config.texture.size = 4096 if args.memory else args.texture_size
    if args.memory:
        config.texture.pyramid_levels = 4
    if args.precision is not None:
        config.optim.precision = args.precision
    config.optim.channels_last = args.channels_last or config.optim.channels_last
    config.optim.iters = args.steps
    prepared = prepare(scenes.demo_room(0), "strokes", config)
    print(f"texture {config.texture.size}^2 x {config.texture.pyramid_levels} layers, image height "
          f"{config.raster.image_height}, levels {config.raster.levels} (+{config.raster.near_levels} near), precision {config.optim.precision}, "
          f"channels_last {config.optim.channels_last}, threads {torch.get_num_threads()}")
    print(f"patches/view {prepared.info['patches_per_view']:.2f}, crop pixels/view "
          f"{prepared.info['patch_pixels_per_view']:.0f}, by level {prepared.info['level_pixels']}")

    if args.memory:
        texture = LaplacianTexture(prepared.initial_tensor, config.texture.pyramid_levels)
        started = time.perf_counter()
        outcome = optimize(texture, prepared.views, prepared.objective, config.optim, config.seed)
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{len(outcome.history)} steps in {time.perf_counter() - started:.1f} s; peak RSS {peak_gb:.2f} GB")
        return

    if args.compare_channels_last:
        compare_channels_last(prepared, config, args.steps)
        return

    texture = LaplacianTexture(prepared.initial_tensor, config.texture.pyramid_levels)
    optimizer = torch.optim.Adam(texture.parameters(), lr=config.optim.lr)
    step_times, vgg_times = [], []
    flag = InterruptFlag()
    content_features = precompute_content(prepared.views, prepared.objective)
    for view_id, view in enumerate(prepared.views[: args.steps]):
        step_times.append(timed_step(texture, optimizer, prepared, view_id, content_features, flag))
        vgg_times.append(bare_vgg(prepared.objective, [t.patch.weight.shape[-2:] for t in view.targets]))
    # The first step also pays one-off allocations: the medians leave it out.
    step_median, vgg_median = statistics.median(step_times[1:]), statistics.median(vgg_times[1:])
    print("step s:     " + " ".join(f"{t:.3f}" for t in step_times))
    print("bare VGG s: " + " ".join(f"{t:.3f}" for t in vgg_times))
    print(f"median step {step_median:.3f} s, bare VGG {vgg_median:.3f} s, ratio {step_median / vgg_median:.2f}")
    steady = [s / v for s, v in zip(step_times, vgg_times)]
    print("per-step ratio: " + " ".join(f"{r:.2f}" for r in steady))


def timed_step(texture, optimizer, prepared, view_id: int, content_features, flag) -> float:
    """Seconds of one optimisation step on view `view_id`, as `optimize` runs it."""
    started = time.perf_counter()
    view = prepared.views[view_id]
    accumulate_gradients(texture, [view], [view_id], prepared.objective, content_features, flag)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    texture.clamp_()
    return time.perf_counter() - started


def compare_channels_last(prepared, config: StylizeConfig, steps: int) -> None:
    """Median step time with the VGG in NCHW and in NHWC layout, A/B/A/B on the same views."""
    content_features = precompute_content(prepared.views, prepared.objective)
    flag = InterruptFlag()
    medians: dict[bool, list[float]] = {False: [], True: []}
    for round_index in range(2):
        for channels_last in (False, True):
            prepared.objective.vgg = load_vgg(dtype=prepared.objective.vgg.compute_dtype, channels_last=channels_last)
            texture = LaplacianTexture(prepared.initial_tensor, config.texture.pyramid_levels)
            optimizer = torch.optim.Adam(texture.parameters(), lr=config.optim.lr)
            times = [timed_step(texture, optimizer, prepared, view_id, content_features, flag)
                     for view_id in range(min(steps, len(prepared.views)))]
            medians[channels_last].append(statistics.median(times[1:]))
            print(f"round {round_index + 1}, channels_last {channels_last}: median step {medians[channels_last][-1]:.3f} s",
                  flush=True)
    ratios = [without / with_ for without, with_ in zip(medians[False], medians[True])]
    print("channels_last speed-up per round: " + " ".join(f"{ratio:.2f}x" for ratio in ratios))


def bare_vgg(objective, sizes) -> float:
    """VGG forward + backward over random crops of the given sizes, same layers as the loss."""
    images = [torch.rand(1, 3, int(h), int(w), requires_grad=True) for h, w in sizes]
    started = time.perf_counter()
    for image in images:
        features = objective.vgg(image, objective.layers)
        torch.stack([f.square().mean() for f in features.values()]).sum().backward()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
