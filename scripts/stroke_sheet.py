"""Contact sheet of stroke sizes: one scene, one style, several `--style-extent` values, the same
held-out views side by side, each column labelled with its extent (README, "Stroke size").

    .venv/bin/python scripts/stroke_sheet.py                       # demo-room, circles, 1 2 4 m
    .venv/bin/python scripts/stroke_sheet.py --style strokes --extents 1m 2m 4m --sheet /tmp/s.jpg

Each extent is an ordinary `meshstyle stylize` run in a child process (same scene, seed and
config apart from the extent, so the cameras are the same), kept under --out; `--reuse` skips runs
whose run.json exists. Also prints eval's median disc radius per extent when the style is circles.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshstyle.evaluate.metrics import evaluate  # noqa: E402
from meshstyle.evaluate.rendering import Renderer  # noqa: E402
from meshstyle.options import parse_length  # noqa: E402
from meshstyle.outputs.render import write_column_sheet  # noqa: E402
from meshstyle.outputs.run_folder import load_result  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", default="demo-room")
    parser.add_argument("--style", default="circles")
    parser.add_argument("--extents", nargs="+", default=["1m", "2m", "4m"])
    parser.add_argument("--out", default="out/stroke_sheet")
    parser.add_argument("--sheet", default="docs/stroke_sheet.jpg")
    parser.add_argument("--rows", type=int, default=2, help="held-out views shown")
    parser.add_argument("--height", type=int, default=240, help="tile height in pixels")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("stylize_args", nargs=argparse.REMAINDER,
                        help="after --: further `meshstyle stylize` options, the same for every run")
    args = parser.parse_args()
    extra = [a for a in args.stylize_args if a != "--"] or [
        "--views", "8", "--holdout", "2", "--iters", "100", "--image-height", "128", "--texture-size", "1024",
        "--levels", "3", "--seed", "0"]
    runs = []
    for text in args.extents:
        extent = parse_length(text)
        folder = Path(args.out) / f"{args.scene}-{args.style}-{extent:g}m"
        runs.append((extent, folder))
        if args.reuse and (folder / "run.json").is_file():
            continue
        command = [sys.executable, "-m", "meshstyle", "stylize", args.scene, "--style", args.style,
                   "--style-extent", f"{extent:g}m", "--out", str(folder), "--overwrite", *extra]
        print("$", " ".join(command[2:]), flush=True)
        subprocess.run(command, check=True)
    write_sheet(Path(args.sheet), runs, args.rows, args.height, measure=args.style == "circles")
    print(f"wrote {args.sheet}")
    return 0


def write_sheet(path: Path, runs: list[tuple[float, Path]], rows: int, height: int, measure: bool) -> None:

    first = load_result(runs[0][1])
    cameras = [camera.scaled(height) for camera in (first.holdout or first.cameras)[:rows]]
    columns = []
    for extent, folder in runs:
        loaded = load_result(folder)
        title = f"--style-extent {extent:g}m"
        if measure:
            circles = evaluate(loaded.mesh, original=loaded.original, cameras=loaded.cameras,
                               holdout=loaded.holdout, metrics=["circles"])["circles"]
            if "radius_median_m" in circles:
                radius = circles["radius_median_m"]
                title += f"  (disc radius {100 * radius:.1f} cm, extent/20 = {100 * extent / 20:.1f} cm)"
                print(f"extent {extent:g} m: eval circles radius_median_m {radius:.4f} "
                      f"({radius / (extent / 20):.2f} x extent/20, {int(circles['count'])} discs)")
        columns.append((title, Renderer(loaded.mesh).render(cameras, loaded.mesh.texture, desc="sheet")))
    write_column_sheet(path, [(title, [view.image for view in rendered]) for title, rendered in columns])


if __name__ == "__main__":
    sys.exit(main())
