"""`meshstyle` command line: a thin layer over the library API (docs/DESIGN.md "Command line").

Exit codes: 0 success; 2 bad input or usage (one line on stderr, no traceback); 1 unexpected
internal error; 130 interrupted (after the optimiser wrote its checkpoint).

Each command imports the library inside its function, the only function-level imports of our own
modules in the package: `meshstyle --version` and `--help` must not pay seconds for torch and open3d.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

from meshstyle import __version__
from meshstyle.errors import InputError, MeshstyleError, RankLost

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit 2, like our input errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(None, f"{self.prog}: {message} (see --help)")


# --------------------------------------------------------------------------- commands


def cmd_scenes(args: argparse.Namespace) -> int:
    import scenes

    for name, (_, description) in scenes.SCENES.items():
        print(f"{name:14s} {description}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    import scenes
    from meshstyle.config import StylizeConfig
    from meshstyle.pipeline import quick_config

    config = quick_config() if args.quick else StylizeConfig()
    if args.seed is not None:
        config.seed = args.seed
    out = Path(args.out)
    _check_out_dir(out, resume=False, overwrite=args.overwrite)
    style = _style_spec(args.style)
    return _run_stylize(scenes.demo_room(), style, config, out, resume=False, overwrite=True, evaluate=False)


def cmd_stylize(args: argparse.Namespace) -> int:
    from meshstyle.common import distributed
    from meshstyle.config import build_config
    from meshstyle.inputs.load import load_scene

    if not distributed.launched_by_torchrun():
        _check_scene_arg(args.scene)
    flags = {"iters": args.iters, "views": args.views, "texture_size": args.texture_size,
             "image_height": args.image_height, "seed": args.seed, "device": args.device}
    overrides = list(args.set or [])
    if args.mesh:
        overrides.append(f"scene.mesh={args.mesh}")
    if args.frames:
        overrides.append(f"scene.frames={args.frames}")
    if args.intrinsics:
        overrides.append(f"scene.intrinsics={args.intrinsics}")
    config = build_config(args.config, overrides, flags)
    _check_device(config.device)
    world = distributed.world(config.device)   # joins the torchrun job, if this is one
    out = Path(args.out) if args.out else Path(f"stylized-{Path(str(args.scene)).stem or 'scene'}")

    def check_and_load():
        # Rank 0 alone reads the inputs and owns the run folder; its verdict reaches every rank.
        _check_scene_arg(args.scene)
        _check_out_dir(out, resume=args.resume, overwrite=args.overwrite)
        _style_spec(args.style)
        return load_scene(args.scene, config.scene)

    scene = distributed.run_on_main(world, check_and_load, share_result=False)
    return _run_stylize(scene, args.style, config, out, resume=args.resume,
                        overwrite=args.overwrite or args.resume, evaluate=args.eval)


def _run_stylize(scene, style, config, out: Path, *, resume: bool, overwrite: bool, evaluate: bool) -> int:
    from meshstyle.common.distributed import current
    from meshstyle.pipeline import stylize
    from meshstyle.common.progress import log

    try:
        result = stylize(scene, style, config, out_dir=out, resume=resume)
    except RankLost as error:
        world = current()
        saved = (f"{out}/checkpoint.pt holds the last completed step: rerun the same torchrun command with --resume"
                 if (out / "checkpoint.pt").is_file() else "no checkpoint was written")
        raise RankLost(f"rank {world.rank} of {world.size}: {error}; {saved}") from None
    if not current().is_main:
        return EXIT_OK
    result.save(out, overwrite=overwrite)
    log(f"wrote {out}/ (stylized.glb, stylized.obj, texture.png, views/, contact_sheet.png, run.json)")
    if evaluate:
        from meshstyle.outputs.run_folder import evaluate_run

        report = evaluate_run(out, metrics=None)
        from meshstyle.evaluate.metrics import format_table

        print(format_table(report))
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    import numpy as np

    from meshstyle.common.progress import log
    from meshstyle.outputs.render import render_views, write_views, write_views_and_video
    from meshstyle.outputs.run_folder import load_result
    from meshstyle.views.trajectories import trajectory

    width, height = _parse_size(args.size)
    loaded = load_result(args.result)
    kind = args.cameras
    if kind == "trajectory" and not loaded.cameras_from_photos:
        # Generated optimisation views are in random order; a spline through them is no fly-through.
        kind = "walkthrough" if loaded.scene.kind == "room" else "orbit"
        log(f"no captured camera path in {args.result}; rendering a generated {kind}")
    cameras = trajectory(kind, mesh=loaded.scene, run_cameras=loaded.cameras or None,
                         frames=args.frames, width=width, height=height, fov_deg=args.fov,
                         rng=np.random.default_rng(args.seed))
    out = Path(args.out) if args.out else _default_sibling(args.result, "render")
    frames = render_views(loaded.mesh, cameras, shading=args.shading, supersample=args.supersample,
                          background=_parse_color(args.background))
    if args.video:
        paths = write_views_and_video(frames, out, args.video, fps=args.fps)
        log(f"wrote {args.video} and {len(paths)} views to {out}/")
    else:
        paths = write_views(frames, out)
        log(f"wrote {len(paths)} views to {out}/")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from meshstyle.outputs.export import write_glb, write_obj
    from meshstyle.common.progress import log
    from meshstyle.outputs.run_folder import load_result

    loaded = load_result(args.result)
    out = Path(args.out) if args.out else _default_sibling(args.result, f"export.{args.format}")
    if out.suffix.lower() != f".{args.format}":
        raise InputError(out, f"--out must end in .{args.format} for --format {args.format}")
    if args.format == "glb":
        write_glb(loaded.mesh, out, up=loaded.scene.up)
    else:
        write_obj(loaded.mesh, out, texture_name=f"{out.stem}.png")
    log(f"wrote {out}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from meshstyle.evaluate.metrics import flatten_metrics, format_table
    from meshstyle.common.io import json_text
    from meshstyle.outputs.run_folder import evaluate_run

    report = evaluate_run(args.result, metrics=args.metric)
    if args.json:
        print(json_text(flatten_metrics(report), sort_keys=True))
    else:
        print(format_table(report))
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from meshstyle.batch import main as run_batch

    return run_batch(args.jobs)


# --------------------------------------------------------------------------- helpers


def _check_scene_arg(scene: str) -> None:
    """Name a missing scene before anything else is read, so the first error is the real one."""
    import scenes

    if not Path(scene).exists() and scene not in scenes.SCENES:
        raise InputError(scene, f"no such file or folder, and not a built-in scene ({', '.join(scenes.SCENES)})")


def _style_spec(style: str) -> str:
    """Fail before any heavy work when the style image is missing or unreadable."""
    from meshstyle.inputs.styles import load_style

    load_style(style, size=64)
    return style


def _check_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    holds_run = out.is_dir() and any((out / name).exists() for name in ("run.json", "checkpoint.pt", "stylized.glb"))
    if resume and not (out / "checkpoint.pt").is_file():
        raise InputError(out, "no checkpoint.pt to resume from")
    if holds_run and not (resume or overwrite):
        raise InputError(out, "already holds a run; pass --resume to continue it or --overwrite to replace it")


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError("--device", f"unknown device '{device}' (cpu or cuda)")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device", "CUDA is not available on this machine; use --device cpu")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise InputError("--size", f"expected WxH such as 640x480, got '{text}'") from None
    if width < 8 or height < 8 or width > 16384 or height > 16384:
        raise InputError("--size", f"size {width}x{height} out of range (8..16384)")
    return width, height


def _parse_color(text: str) -> tuple[float, float, float]:
    value = text.strip().lstrip("#")
    try:
        if len(value) == 6:
            return tuple(int(value[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]
        parts = [float(part) for part in value.split(",")]
        if len(parts) == 3 and all(0 <= part <= 1 for part in parts):
            return tuple(parts)  # type: ignore[return-value]
    except ValueError:
        pass
    raise InputError("--background", f"expected a colour like ffffff or 1,1,1, got '{text}'")


def _default_sibling(result: str, name: str) -> Path:
    path = Path(result)
    return path / name if path.is_dir() else path.with_name(f"{path.stem}-{name}")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meshstyle", description="Repaint the texture of a 3D mesh in the style of a painting.")
    parser.add_argument("--version", action="version", version=f"meshstyle {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    demo = add("demo", cmd_demo, "Stylize the built-in demo room with a built-in style (no arguments, no network).")
    demo.add_argument("--out", default="meshstyle-demo", help="run folder to write (default: meshstyle-demo)")
    demo.add_argument("--style", default="strokes", help="image file or built-in style name (default: strokes)")
    demo.add_argument("--quick", action="store_true", help="a smoke-test run in under a minute")
    demo.add_argument("--seed", type=int, default=None)
    demo.add_argument("--overwrite", action="store_true", help="replace a run already in --out")

    stylize = add("stylize", cmd_stylize, "Stylize a mesh file, scan folder or built-in scene.")
    stylize.add_argument("scene", metavar="SCENE", help="mesh file (.ply .obj .glb .gltf .off .stl), scan folder or built-in scene")
    stylize.add_argument("--style", required=True, metavar="IMAGE", help="style image file or built-in style name")
    stylize.add_argument("--out", metavar="DIR", help="run folder (default: ./stylized-<scene>)")
    stylize.add_argument("--config", metavar="FILE.toml", help="TOML file with any config keys")
    stylize.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    stylize.add_argument("--iters", type=int, help="optimisation steps (optim.iters)")
    stylize.add_argument("--views", type=int, help="optimisation views (cameras.views)")
    stylize.add_argument("--texture-size", type=int, metavar="PX", help="atlas side in texels (texture.size)")
    stylize.add_argument("--image-height", type=int, metavar="PX", help="render height of the coarsest level (raster.image_height)")
    stylize.add_argument("--seed", type=int)
    stylize.add_argument("--device", help="cpu or cuda")
    stylize.add_argument("--mesh", help="which mesh inside a scan folder with several")
    stylize.add_argument("--frames", help="frame subset of a scan: start:stop:step or i,j,k")
    stylize.add_argument("--intrinsics", metavar="FILE", help="intrinsics of a scan without its own (3x3/4x4 or info.txt)")
    stylize.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    stylize.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    stylize.add_argument("--eval", action="store_true", help="run `meshstyle eval` on the result")

    render = add("render", cmd_render, "Render views, contact sheets and videos of a run folder or textured GLB/OBJ.")
    render.add_argument("result", metavar="RESULT", help="run folder or textured .glb/.obj")
    render.add_argument("--cameras", default="trajectory", help="trajectory | orbit | walkthrough | camera FILE (.json, transforms.json)")
    render.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    render.add_argument("--size", default="640x480", metavar="WxH", help="image size (default 640x480)")
    render.add_argument("--fov", type=float, default=None, help="vertical field of view in degrees")
    render.add_argument("--out", metavar="DIR", help="folder for NNNN.png (default: RESULT/render)")
    render.add_argument("--video", metavar="FILE.mp4", help="also write an MP4")
    render.add_argument("--fps", type=int, default=30)
    render.add_argument("--shading", action="store_true", help="simple Lambert shading from the normals")
    render.add_argument("--supersample", type=int, default=1, help="anti-aliasing factor (1 = off)")
    render.add_argument("--background", default="ffffff", help="background colour (hex or r,g,b in 0..1)")
    render.add_argument("--seed", type=int, default=0, help="seed for generated trajectories")

    export = add("export", cmd_export, "Export a result as a textured GLB or OBJ.")
    export.add_argument("result", metavar="RESULT", help="run folder or textured .glb/.obj")
    export.add_argument("--format", required=True, choices=["glb", "obj"])
    export.add_argument("--out", metavar="FILE", help="output file (default: beside RESULT)")

    evaluate = add("eval", cmd_eval, "Measure a stylization: circles, style, content, seams, coverage.")
    evaluate.add_argument("result", metavar="RESULT", help="run folder or textured .glb/.obj")
    evaluate.add_argument("--metric", action="append", metavar="NAME", help="metric to compute (repeatable; default all)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as one JSON object")

    batch = add("batch", cmd_batch, "Run every scene x style of a jobs file into OUT/<scene>__<style>/ "
                                    "(under torchrun: jobs spread over the ranks).")
    batch.add_argument("jobs", metavar="JOBS.toml", help="jobs file: out, scenes, styles, optional config, eval, [set]")

    add("scenes", cmd_scenes, "List the built-in scenes.")
    return parser


def _is_main_rank() -> bool:
    if "torch" not in sys.modules:   # no process group without torch; keep --help light
        return True
    from meshstyle.common.distributed import current

    return current().is_main


def _report(error: Exception) -> None:
    """One line on stderr; an error relayed from rank 0 under torchrun was already printed there."""
    if not getattr(error, "relayed", False):
        print(f"meshstyle: {error}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from meshstyle.common.allocator import tune_allocator

    tune_allocator()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help(sys.stderr)
            return EXIT_INPUT
        return args.handler(args)
    except SystemExit as exit_request:  # --help and --version exit through argparse
        return int(exit_request.code or 0)
    except RankLost as error:   # a MeshstyleError, but no bad input: exit 1
        print(f"meshstyle: {error}", file=sys.stderr)
        return EXIT_INTERNAL
    except MeshstyleError as error:   # InputError and its kin: one line naming the file, exit 2
        _report(error)
        return EXIT_INPUT
    except KeyboardInterrupt:
        if _is_main_rank():
            print("meshstyle: interrupted (checkpoint written; continue with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # the last line of defence: one line, traceback only on request
        if os.environ.get("MESHSTYLE_DEBUG"):
            traceback.print_exc()
        print(f"meshstyle: internal error: {type(error).__name__}: {error} (set MESHSTYLE_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if "torch.distributed" in sys.modules:
            from meshstyle.common.distributed import shutdown

            shutdown()
