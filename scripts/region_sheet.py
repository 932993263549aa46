"""Contact sheet of a style per region, for README (docs/region_sheet.jpg).

demo-room with its walls, floor and furniture in different styles and the sofa kept as it was:

    python scripts/region_sheet.py OUT_DIR docs/region_sheet.jpg [--iters 140] [--views 12]

It runs the real pipeline through the CLI (`meshstyle stylize demo-room --style strokes --region
wall=... --region floor=circles --region sofa=keep ...`), then renders a few of the run's views:
the original colours beside the result. The third style ("tiles", a blue-and-white mosaic) is
made here in code, so the sheet needs no download.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from meshstyle.common.io import write_image
from meshstyle.evaluate.rendering import Renderer
from meshstyle.outputs.render import write_column_sheet
from meshstyle.outputs.run_folder import load_result


def tiles_style(path: Path, size: int = 384, seed: int = 0) -> Path:
    """A mosaic of blue and white square tiles with dark grout, slightly uneven."""
    rng = np.random.default_rng(seed)
    cells = 12
    colours = np.array([[0.10, 0.25, 0.65], [0.92, 0.93, 0.95], [0.25, 0.55, 0.85]])
    choice = rng.integers(0, len(colours), size=(cells, cells))
    tile = colours[choice] * rng.uniform(0.85, 1.1, size=(cells, cells, 1))
    image = tile.repeat(size // cells, 0).repeat(size // cells, 1)
    grout = (np.arange(size) % (size // cells)) < 3
    image[grout, :] = 0.15
    image[:, grout] = 0.15
    write_image(path, np.clip(image, 0, 1).astype(np.float32))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the run and the style image")
    parser.add_argument("sheet", help="contact sheet to write (.jpg/.png)")
    parser.add_argument("--iters", type=int, default=140)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--rows", type=int, default=3, help="views shown")
    parser.add_argument("--height", type=int, default=220, help="pixel height of each tile")
    parser.add_argument("--reuse", action="store_true", help="keep an existing finished run")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiles = tiles_style(out / "tiles.png")
    run = out / "run"
    regions = [("wall", str(tiles)), ("floor", "circles"), ("sofa", "keep")]
    if not (args.reuse and (run / "run.json").is_file()):
        command = [sys.executable, "-m", "meshstyle", "stylize", "demo-room", "--style", "strokes",
                   "--out", str(run), "--overwrite", "--iters", str(args.iters), "--views", str(args.views),
                   "--texture-size", "1024", "--image-height", "128", "--style-size", "256"]
        for name, style in regions:
            command += ["--region", f"{name}={style}"]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True, env=dict(os.environ))


    loaded = load_result(run)
    cameras = [camera.scaled(args.height) for camera in (loaded.holdout + loaded.cameras)[:args.rows]]
    columns = [("original", Renderer(loaded.original).render(cameras, loaded.original.texture, desc="sheet")),
               ("stylized: " + ", ".join(f"{n}={Path(s).stem}" for n, s in regions) + ", rest=strokes",
                Renderer(loaded.mesh).render(cameras, loaded.mesh.texture, desc="sheet"))]
    sheet_path = Path(args.sheet)
    write_column_sheet(sheet_path, [(title, [view.image for view in rendered]) for title, rendered in columns])
    print(f"wrote {sheet_path}")


if __name__ == "__main__":
    main()
