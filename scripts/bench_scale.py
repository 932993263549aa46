"""Data-parallel scaling on one machine: 1 and 2 torchrun processes, one thread each, on demo-room.

    python scripts/bench_scale.py [--iters 120] [--ranks 1 2] [--style strokes] [--keep DIR] [--set KEY=VALUE ...]

Each run is `torchrun --standalone --nproc-per-node N -m meshstyle stylize demo-room ...` with the
default settings but `--iters`; on N ranks the run takes iters/N steps of N views
(optim.steps_scaler), so every run trains on the same number of views. Printed per run: steps/s and
views/s of the optimiser loop, time to a fixed loss (the 1-process run's loss, averaged over 8
views, at three quarters of its run), final holdout style loss; then the speedup and parallel
efficiency (speedup / N) against the 1-process run. The cache is warmed first, so atlas and
rasterization do not count.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WINDOW_VIEWS = 8       # smooth the per-step training loss over this many views
TARGET_SHARE = 0.75    # the fixed loss: where the 1-process run is at this share of its steps


def run(ranks: int, iters: int, style: str, out: Path, overrides: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MESHSTYLE_QUIET": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
               "-m", "meshstyle", "stylize", "demo-room", "--style", style, "--iters", str(iters),
               "--out", str(out), "--overwrite", "--set", "optim.checkpoint_every_s=1e9"]
    for item in overrides:
        command += ["--set", item]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"bench_scale: {ranks} ranks failed:\n{done.stderr[-2000:]}")
    return json.loads((out / "run.json").read_text())


def smoothed(history: list[dict], views_per_step: int) -> list[tuple[float, float]]:
    """(seconds since the loop started, training loss averaged over the last WINDOW_VIEWS views)."""
    window = max(1, WINDOW_VIEWS // views_per_step)
    elapsed, points = 0.0, []
    for index, record in enumerate(history):
        elapsed += record["seconds"]
        recent = history[max(0, index + 1 - window):index + 1]
        if len(recent) == window:
            points.append((elapsed, sum(r["total"] for r in recent) / window))
    return points


def time_to(points: list[tuple[float, float]], loss: float) -> float | None:
    return next((seconds for seconds, value in points if value <= loss), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=120, help="steps of the 1-process run (default 120)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--style", default="strokes")
    parser.add_argument("--keep", type=Path, help="keep the run folders here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    run(1, 2, args.style, folder / "warm", args.set)   # atlas, fragments and numba kernels into the caches
    results = {}
    for ranks in args.ranks:
        record = run(ranks, args.iters, args.style, folder / f"ranks{ranks}", args.set)
        history = record["history"]
        seconds = sum(r["seconds"] for r in history)
        results[ranks] = {"steps": len(history), "seconds": seconds, "steps_per_s": len(history) / seconds,
                          "views_per_s": len(history) * ranks / seconds, "points": smoothed(history, ranks),
                          "holdout": record["info"].get("holdout_style_loss", {}).get("final"),
                          "optimise_s": record["timings"]["optimise"]}
    base = results[min(results)]
    target = base["points"][int(TARGET_SHARE * (len(base["points"]) - 1))][1]
    print(f"demo-room, style {args.style}, {args.iters} view visits per run, 1 thread per process, "
          f"overrides {' '.join(args.set) or 'none'}; "
          f"fixed loss {target:.4g} (8-view mean)")
    print(f"{'ranks':>5} {'steps':>5} {'loop s':>7} {'steps/s':>8} {'views/s':>8} {'to loss s':>9} "
          f"{'holdout':>8} {'speedup':>8} {'efficiency':>10}")
    base_time = time_to(base["points"], target)
    for ranks, figures in results.items():
        reached = time_to(figures["points"], target)
        speedup = base_time / reached if reached and base_time else None
        print(f"{ranks:>5} {figures['steps']:>5} {figures['seconds']:>7.1f} {figures['steps_per_s']:>8.3f} "
              f"{figures['views_per_s']:>8.3f} {reached if reached is not None else float('nan'):>9.1f} "
              f"{figures['holdout'] or float('nan'):>8.4g} {speedup or float('nan'):>8.2f} "
              f"{(speedup or float('nan')) / ranks:>10.2f}")
    throughput = {ranks: figures["views_per_s"] / base["views_per_s"] for ranks, figures in results.items()}
    print("throughput efficiency (views/s over N x 1-process): " +
          ", ".join(f"{ranks} ranks {value / ranks:.2f}" for ranks, value in throughput.items()))


if __name__ == "__main__":
    main()
