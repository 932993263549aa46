"""`meshstyle` command line: a thin layer over the library API (docs/DESIGN.md "Command line").

Exit codes: 0 success; 2 bad input or usage (one line on stderr, no traceback); 1 unexpected
internal error; 130 interrupted (after the optimiser wrote its checkpoint).

Each command imports the library inside its function, the only function-level imports of our own
modules in the package: `meshstyle --version` and `--help` must not pay seconds for torch and open3d.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable, Iterator, Sequence, get_args

from meshstyle import __version__
from meshstyle.config import ObjFrame
from meshstyle.errors import InputError, Interrupted, MeshstyleError, RankLost

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit 2, like our input errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(None, f"{self.prog}: {message}{self._suggestion(message)} (see --help)")

    def _suggestion(self, message: str) -> str:
        """'; did you mean --style-strength?' for a misspelt flag."""
        import difflib

        if "unrecognized arguments" not in message:
            return ""
        unknown = [word for word in message.replace(",", " ").split() if word.startswith("--")]
        known = _option_strings(self)
        for word in unknown:
            near = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
            if near:
                return f"; did you mean {near[0]}?"
        return ""


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option of a parser and its subcommands (argparse reports a subcommand's unknown
    options from the top-level parser)."""
    options = []
    for action in parser._actions:
        options += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options += _option_strings(sub)
    return options


# --------------------------------------------------------------------------- commands


def cmd_scenes(args: argparse.Namespace) -> int:
    from meshstyle import scenes

    for name, (_, description) in scenes.SCENES.items():
        print(f"{name:14s} {description}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from meshstyle import scenes
    from meshstyle.config import StylizeConfig
    from meshstyle.pipeline import quick_config

    config = quick_config() if args.quick else StylizeConfig()
    if args.seed is not None:
        config.seed = args.seed
    out = Path(args.out)
    with _owned_out_dir(out, resume=False, overwrite=args.overwrite, config=config):
        style = _style_spec(args.style)
        return _run_stylize(scenes.demo_room(), style, config, out, resume=False, overwrite=args.overwrite,
                            evaluate=False)


def cmd_stylize(args: argparse.Namespace) -> int:
    from meshstyle.config import build_config
    from meshstyle.options import flag_values

    # Inputs and values first, before torch and open3d load (seconds): bad input exits at once.
    # Under torchrun rank 0 alone reads the inputs (below), so every rank does not report them.
    flags = flag_values(args)
    overrides = list(args.set or [])
    config = build_config(args.config, overrides, flags)
    _check_device(config.device)
    if not _launched_by_torchrun():
        _check_scene_arg(args.scene)
        for one in args.style:
            _style_spec(one)
    if args.snapshot_every is not None and args.snapshot_every < 1:
        raise InputError("--snapshot-every", f"expected a number of steps >= 1, got {args.snapshot_every}")
    out = Path(args.out) if args.out else Path(f"stylized-{Path(str(args.scene)).stem or 'scene'}")
    if not _launched_by_torchrun():
        # Checked again under the run lock (_owned_out_dir); this early look costs no imports.
        _check_out_dir(out, resume=args.resume, overwrite=args.overwrite)
        _check_out_apart_from_inputs(out, args.scene, args.style)

    from meshstyle.common import distributed
    from meshstyle.inputs.load import load_scene
    from meshstyle.inputs.regions import resolve_regions
    from meshstyle.pipeline import blend_weights

    blend_weights(len(args.style), config.loss.style_weights)   # a weight count that does not fit fails now
    world = distributed.world(config.device)   # joins the torchrun job, if this is one

    def check_and_load():
        # Rank 0 alone reads the inputs and owns the run folder (its lock is held until the command
        # ends); its verdict reaches every rank, so a refused folder is reported once.
        _check_out_apart_from_inputs(out, args.scene, args.style)
        owned.enter_context(_owned_out_dir(out, resume=args.resume, overwrite=args.overwrite, config=config))
        _check_scene_arg(args.scene)
        for one in args.style:
            _style_spec(one)
        scene = load_scene(args.scene, config.scene)
        # Region names, label files and region styles fail here, before the atlas and the cameras.
        plan = resolve_regions(scene, config.regions.styles, config.regions.labels)
        for region in plan.regions if plan is not None else []:
            if region.style:
                _style_spec(region.style)
        return scene

    with contextlib.ExitStack() as owned:
        scene = distributed.run_on_main(world, check_and_load, share_result=False)
        style = args.style[0] if len(args.style) == 1 else list(args.style)
        return _run_stylize(scene, style, config, out, resume=args.resume,
                            overwrite=args.overwrite or args.resume, evaluate=args.eval,
                            snapshot_every=args.snapshot_every,
                            view=(args.view_host, args.view_port) if args.view else None)


def _run_stylize(scene, style, config, out: Path, *, resume: bool, overwrite: bool, evaluate: bool,
                 snapshot_every: int | None = None, view: tuple[str, int] | None = None) -> int:
    from meshstyle.common.distributed import current, run_on_main
    from meshstyle.common.progress import log
    from meshstyle.outputs.monitor import LiveView, SnapshotWriter
    from meshstyle.outputs.run_files import clear_run_folder
    from meshstyle.pipeline import stylize

    observers = []
    viewer = None
    if current().is_main:   # one rank watches: snapshots and the viewer are the run folder's owner's
        if snapshot_every:
            observers.append(SnapshotWriter(out, snapshot_every))
        if view is not None:
            from meshstyle.outputs.viewer import Viewer

            viewer = Viewer(host=view[0], port=view[1], screenshot_dir=out / "screenshots")
            announce_viewer(viewer)
            observers.append(LiveView(viewer))
    if overwrite and not resume and current().is_main:
        clear_run_folder(out)   # no file of the previous run may survive next to the new one
    try:
        try:
            result = stylize(scene, style, config, out_dir=out, resume=resume, observers=observers)
        except RankLost as error:
            world = current()
            saved = (f"{out}/checkpoint.pt holds the last completed step: rerun the same torchrun command with --resume"
                     if (out / "checkpoint.pt").is_file() else "no checkpoint was written")
            raise RankLost(f"rank {world.rank} of {world.size}: {error}; {saved}") from None
        # Every rank waits for the run folder: a failed save fails them all, and torchrun's job
        # ends only once its outputs exist.
        run_on_main(current(), lambda: result.save(out, overwrite=overwrite), share_result=False)
        if not current().is_main:
            return EXIT_OK
        log(f"wrote {out}/ (stylized.glb, stylized.obj, texture.png, views/, contact_sheet.png, run.json)")
        if viewer is not None and sys.stdin is not None and sys.stdin.isatty():
            # At a terminal the user is watching: keep the finished room on screen until Ctrl-C.
            print(f"meshstyle: run finished; viewer still at {viewer.url} (Ctrl-C to stop)", flush=True)
            viewer.wait()
    finally:
        if viewer is not None:
            viewer.close()
    if evaluate:
        from meshstyle.outputs.run_folder import evaluate_run

        report = evaluate_run(out, metrics=None)
        from meshstyle.evaluate.metrics import format_table

        print(format_table(report))
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    # Every option is checked before the heavy imports (numba kernels, open3d): bad input exits at once.
    from meshstyle.outputs.run_files import check_result_path
    from meshstyle.outputs.run_lock import check_writable_dir

    width, height = _parse_size(args.size)
    _check_render_options(args, width, height)
    background = _parse_color(args.background)
    if args.cameras not in ("trajectory", "orbit", "walkthrough") and not Path(args.cameras).is_file():
        raise InputError(args.cameras, "--cameras is neither trajectory, orbit, walkthrough nor an existing file")
    out = Path(args.out) if args.out else _default_sibling(args.result, "render")
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out exists and is not a folder")
    check_writable_dir(out, "render folder")
    if args.video:
        check_writable_dir(Path(args.video).parent, "video's folder")
    check_result_path(args.result)

    import numpy as np

    from meshstyle.common.progress import log
    from meshstyle.outputs.run_folder import load_result
    from meshstyle.outputs.run_files import remove_stale_frames

    loaded = load_result(args.result)
    from meshstyle.outputs.render import render_views, write_views, write_views_and_video
    from meshstyle.views.trajectories import trajectory

    kind = args.cameras
    if kind == "trajectory" and not loaded.cameras_from_photos:
        # Generated optimisation views are in random order; a spline through them is no fly-through.
        kind = "walkthrough" if loaded.scene.kind == "room" else "orbit"
        log(f"no captured camera path in {args.result}; rendering a generated {kind}")
    cameras = trajectory(kind, mesh=loaded.scene, run_cameras=loaded.cameras or None,
                         frames=args.frames, width=width, height=height, fov_deg=args.fov,
                         rng=np.random.default_rng(args.seed))
    frames = render_views(loaded.mesh, cameras, shading=args.shading, supersample=args.supersample,
                          background=background)
    if args.video:
        paths = write_views_and_video(frames, out, args.video, fps=args.fps)
        log(f"wrote {args.video} and {len(paths)} views to {out}/")
    else:
        paths = write_views(frames, out)
        log(f"wrote {len(paths)} views to {out}/")
    # Frames of an older, longer render would pass for part of this one.
    remove_stale_frames(out, len(paths))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from meshstyle.common.progress import log
    from meshstyle.outputs.run_files import check_result_path
    from meshstyle.outputs.run_lock import check_writable_dir

    if args.format is None and args.cameras is None:
        raise InputError("export", "nothing to export: give --format glb|obj and/or --cameras FILE.json")
    result = check_result_path(args.result)
    if args.format is not None:
        out = Path(args.out) if args.out else _default_sibling(args.result, f"export.{args.format}")
        if out.suffix.lower() != f".{args.format}":
            raise InputError(out, f"--out must end in .{args.format} for --format {args.format}")
        targets = [out] if args.format == "glb" else [out, out.with_suffix(".mtl")]
        _refuse_existing(targets, args.overwrite)
        check_writable_dir(out.parent, "export folder")
        _export_mesh(result, args.format, out, obj_frame=args.obj_frame, reunwrap=args.reunwrap,
                     overwrite=args.overwrite)
        log(f"wrote {out}")
    if args.cameras is not None:
        from meshstyle.outputs.nerfstudio import write_run_cameras

        target = Path(args.cameras)
        _refuse_existing([target], args.overwrite)
        check_writable_dir(target.parent, "camera file's folder")
        count = write_run_cameras(result, target, form=args.camera_format)
        log(f"wrote {count} cameras to {target}")
    return EXIT_OK


def _refuse_existing(targets: list[Path], overwrite: bool) -> None:
    existing = [path for path in targets if path.exists()]
    for path in existing:
        if path.is_dir():
            raise InputError(path, "is a folder; --out needs a file name")
    if existing and not overwrite:
        raise InputError(existing[0], "already exists; pass --overwrite to replace it")


def _export_mesh(result: Path, format: str, out: Path, *, obj_frame: str, reunwrap: bool, overwrite: bool) -> None:
    """A run folder's stylized mesh, or a textured file made elsewhere kept as it is (roundtrip.py)."""
    from meshstyle.inputs.textured import read_textured
    from meshstyle.outputs.export import in_output_frame, write_glb, write_obj
    from meshstyle.geometry.frames import check_obj_frame

    check_obj_frame(obj_frame, "--obj-frame")
    if result.is_dir():
        from meshstyle.outputs.run_folder import load_result

        loaded = load_result(result)
        mesh = loaded.mesh            # stylized.glb: already in the output frame
        if format == "glb":
            write_glb(mesh, out)
            return
        if obj_frame == "input":
            mesh = _to_input_frame(mesh, loaded.run, result)
        _refuse_existing([out.with_name(f"{out.stem}.png")], overwrite)
        write_obj(mesh, out, texture_name=f"{out.stem}.png")
        return
    if result.suffix.lower() not in (".glb", ".gltf", ".obj"):
        raise InputError(result, "expected a run folder or a textured .glb/.gltf/.obj")
    from meshstyle.inputs.meshes import file_up

    if reunwrap:
        mesh = read_textured(result, reunwrap=True)
        if format == "glb" or obj_frame == "output":
            mesh = in_output_frame(mesh, file_up(result))
        if format == "glb":
            write_glb(mesh, out)
        else:
            _refuse_existing([out.with_name(f"{out.stem}.png")], overwrite)
            write_obj(mesh, out, texture_name=f"{out.stem}.png")
        return
    from meshstyle.outputs.roundtrip import export_glb, export_obj

    if format == "glb":
        export_glb(result, out)
    else:
        export_obj(result, out, frame=obj_frame)


def _to_input_frame(mesh, run, folder: Path):
    import numpy as np

    from meshstyle.geometry.frames import transform_points
    from meshstyle.geometry.scene import TexturedMesh

    matrix = (run.frame if run is not None else {}).get("input_to_output")
    if matrix is None:
        raise InputError(folder / "run.json", "records no frame transform (frame.input_to_output); "
                                              "cannot write the input's frame")
    to_input = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    return TexturedMesh(transform_points(to_input, mesh.vertices), mesh.faces, mesh.uv, mesh.texture)


def cmd_eval(args: argparse.Namespace) -> int:
    from meshstyle.outputs.run_files import check_result_path

    check_result_path(args.result)   # before the metrics' imports (torch: seconds)
    from meshstyle.evaluate.metrics import flatten_metrics, format_table
    from meshstyle.common.io import json_text
    from meshstyle.outputs.run_folder import evaluate_run

    report = evaluate_run(args.result, metrics=args.metric)
    if args.json:
        print(json_text(flatten_metrics(report), sort_keys=True))
    else:
        print(format_table(report))
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from meshstyle.options import config_table

    print(config_table())
    return EXIT_OK


def cmd_view(args: argparse.Namespace) -> int:
    from meshstyle.outputs.run_files import check_result_path

    check_result_path(args.result)   # before the viewer's and loaders' imports (seconds)
    if not 0 <= args.port <= 65535:
        raise InputError("--port", f"expected 0..65535, got {args.port}")
    from meshstyle.outputs.run_folder import load_result
    from meshstyle.outputs.viewer import Viewer, content_of

    loaded = load_result(args.result)
    path = Path(args.result)
    screenshots = path / "screenshots" if path.is_dir() else path.parent
    viewer = Viewer(host=args.host, port=args.port, screenshot_dir=screenshots)
    try:
        viewer.show(content_of(loaded))
        announce_viewer(viewer)
        viewer.wait()
    finally:
        viewer.close()
    return EXIT_OK


def announce_viewer(viewer) -> None:
    """The URL goes to stdout even when quiet: it is the command's answer, and scripts read it."""
    print(f"meshstyle: viewer at {viewer.url} (Ctrl-C to stop)", flush=True)


def cmd_cache(args: argparse.Namespace) -> int:
    from meshstyle.common.cache import KINDS, cache_info, cache_root, clear_cache

    if args.action == "clear":
        kinds = tuple(args.kind) if args.kind else KINDS
        print(f"removed {clear_cache(kinds)} cache entries from {cache_root()}")
        return EXIT_OK
    print(f"cache root: {cache_root()}  (MESHSTYLE_CACHE > XDG_CACHE_HOME/meshstyle > ~/.cache/meshstyle)")
    for kind, figures in cache_info().items():
        print(f"{kind:10s} {figures['entries']:6d} entries {figures['mb']:10.1f} MB of {figures['budget_mb']:.0f} MB"
              f"  (MESHSTYLE_{kind.upper()}_CACHE_MB)")
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from meshstyle.batch import load_jobs

    if not _launched_by_torchrun():
        load_jobs(args.jobs)   # the whole jobs file, checked before torch loads (seconds)
    from meshstyle.batch import main as run_batch

    return run_batch(args.jobs)


# --------------------------------------------------------------------------- helpers


def _launched_by_torchrun() -> bool:
    """distributed.launched_by_torchrun without importing torch (seconds)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    except ValueError:
        return False


def _check_scene_arg(scene: str) -> None:
    """Name a missing scene before anything else is read, so the first error is the real one."""
    if Path(scene).exists():
        return
    if Path(scene).is_symlink():
        raise InputError(scene, "a symbolic link that leads nowhere (broken or a loop)")
    from meshstyle import scenes

    if scene not in scenes.SCENES:
        raise InputError(scene, f"no such file or folder, and not a built-in scene ({', '.join(scenes.SCENES)})")


def _style_spec(style: str) -> str:
    """Fail before any heavy work when the style image is missing or unreadable."""
    from meshstyle.inputs.styles import load_style

    if not style.strip():
        raise InputError("--style", "is empty: give an image file or a built-in style name")
    load_style(style, size=64)
    return style


@contextlib.contextmanager
def _owned_out_dir(out: Path, *, resume: bool, overwrite: bool, config) -> Iterator[None]:
    """Before any work: the run folder is writable, has room, is ours alone (lock), and holds what
    the flags expect. The lock is held until the command ends, on every exit path."""
    from meshstyle.outputs.run_lock import check_free_space, check_writable_dir, owned_run_folder

    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    check_writable_dir(out, "output folder")
    check_free_space(out, _run_bytes(config))
    with owned_run_folder(out):
        _check_out_dir(out, resume=resume, overwrite=overwrite)
        yield


def _run_bytes(config) -> int:
    """A generous estimate of a run folder's size: the checkpoint (texture layers with Adam's two
    moments, a third more for the Laplacian layers), the PNGs, GLB and OBJ, and the views."""
    side = config.texture.size or config.texture.max_size
    texels = side * side
    return int(texels * 3 * 4 * 3 * 4 / 3 + texels * 3 * 4 + 8 * 2**20)


def _check_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    holds_run = out.is_dir() and any((out / name).exists() for name in ("run.json", "checkpoint.pt", "stylized.glb"))
    if resume and not (out / "checkpoint.pt").is_file():
        raise InputError(out, "no checkpoint.pt to resume from")
    if holds_run and not (resume or overwrite):
        raise InputError(out, "already holds a run; pass --resume to continue it or --overwrite to replace it")
    if overwrite and not resume:
        from meshstyle.outputs.run_files import foreign_files

        foreign = foreign_files(out)
        if foreign:
            raise InputError(out, f"holds files meshstyle did not write ({', '.join(foreign[:3])}"
                                  f"{' ...' if len(foreign) > 3 else ''}); --overwrite only replaces a run folder")



def _check_out_apart_from_inputs(out: Path, scene: str, styles: Sequence[str]) -> None:
    """A run folder must not hold its own inputs: a scan's transforms.json or a style named style.png
    would be overwritten by the run's files, and `--overwrite` would later delete them as ours."""
    import fnmatch

    from meshstyle.outputs.run_files import OWN_PATTERNS

    target = out.resolve()
    if Path(scene).exists():
        source = Path(scene).resolve()
        if source == target or target in source.parents:
            raise InputError(out, f"--out holds the input scene {scene}; choose a folder outside it")
    for style in styles:
        path = Path(style)
        if path.is_file() and path.resolve().parent == target and \
                any(fnmatch.fnmatch(path.name, pattern) for pattern in OWN_PATTERNS):
            raise InputError(out, f"--out holds the style image {style}, which the run would overwrite; "
                                  "choose another folder")


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError("--device", f"unknown device '{device}' (cpu or cuda)")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device", "CUDA is not available on this machine; use --device cpu")


# Render limits: a frame of MAX_RENDER_PIXELS supersampled stays within a few GB of buffers.
MAX_RENDER_PIXELS = 4096 * 4096
MAX_SUPERSAMPLE = 8


def _check_render_options(args: argparse.Namespace, width: int, height: int) -> None:
    """Every render option checked before the result is read (exit 2 naming the option)."""
    import math

    if args.fov is not None and not (math.isfinite(args.fov) and 1.0 <= args.fov <= 170.0):
        raise InputError("--fov", f"{args.fov} is out of range (1..170 degrees)")
    if not 1 <= args.fps <= 240:
        raise InputError("--fps", f"{args.fps} is out of range (1..240)")
    if not 1 <= args.supersample <= MAX_SUPERSAMPLE:
        raise InputError("--supersample", f"{args.supersample} is out of range (1..{MAX_SUPERSAMPLE})")
    if not 1 <= args.frames <= 100_000:
        raise InputError("--frames", f"{args.frames} is out of range (1..100000)")
    if width * height * args.supersample ** 2 > MAX_RENDER_PIXELS:
        raise InputError("--size", f"{width}x{height} x supersample {args.supersample} is "
                                   f"{width * height * args.supersample ** 2 / 1e6:.0f} Mpixel per frame; "
                                   f"the limit is {MAX_RENDER_PIXELS / 1e6:.0f} Mpixel")
    if args.video and Path(args.video).suffix.lower() != ".mp4":
        raise InputError(args.video, "--video must name an .mp4 file")


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
    from meshstyle.options import add_config_flags

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
    stylize.add_argument("--style", required=True, metavar="IMAGE", nargs="+",
                         help="style image file or built-in style name; several are blended (see --style-weights)")
    stylize.add_argument("--out", metavar="DIR", help="run folder (default: ./stylized-<scene>)")
    stylize.add_argument("--config", metavar="FILE.toml", help="TOML file with any config keys")
    stylize.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    stylize.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    stylize.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    stylize.add_argument("--eval", action="store_true", help="run `meshstyle eval` on the result (default: off)")
    stylize.add_argument("--snapshot-every", type=int, metavar="N",
                         help="write the texture and a few views to OUT/snapshots/ every N steps (default: off)")
    stylize.add_argument("--view", action="store_true",
                         help="serve the live 3-D viewer while the run goes (texture updated every few steps)")
    stylize.add_argument("--view-host", default="127.0.0.1", metavar="ADDR",
                         help="address the --view viewer binds (default: 127.0.0.1)")
    stylize.add_argument("--view-port", type=int, default=8080, metavar="N",
                         help="port of the --view viewer; the next free one if taken, 0 = any (default: 8080)")
    add_config_flags(stylize)

    render = add("render", cmd_render, "Render views, contact sheets and videos of a run folder or textured GLB/OBJ.")
    render.add_argument("result", metavar="RESULT", help="run folder or textured .glb/.obj")
    render.add_argument("--cameras", default="trajectory", help="trajectory | orbit | walkthrough | camera FILE (.json, transforms.json)")
    render.add_argument("--frames", type=int, default=60, help="number of frames")
    render.add_argument("--size", default="640x480", metavar="WxH", help="image size")
    render.add_argument("--fov", type=float, default=None, help="vertical field of view in degrees (default: the cameras' own)")
    render.add_argument("--out", metavar="DIR", help="folder for NNNN.png (default: RESULT/render)")
    render.add_argument("--video", metavar="FILE.mp4", help="also write an MP4")
    render.add_argument("--fps", type=int, default=30)
    render.add_argument("--shading", action="store_true", help="simple Lambert shading from the normals")
    render.add_argument("--supersample", type=int, default=1, help="anti-aliasing factor (1 = off)")
    render.add_argument("--background", default="ffffff", help="background colour (hex or r,g,b in 0..1)")
    render.add_argument("--seed", type=int, default=0, help="seed for generated trajectories")

    export = add("export", cmd_export, "Export a result as a textured GLB or OBJ (glTF frame: +Y up, metres), "
                                       "and/or its cameras for other tools.")
    export.add_argument("result", metavar="RESULT", help="run folder or textured .glb/.gltf/.obj")
    export.add_argument("--format", choices=["glb", "obj"], default=None,
                        help="mesh format to write (default: none, when only --cameras is wanted)")
    export.add_argument("--out", metavar="FILE", help="output file (default: RESULT/export.<format> for a run "
                        "folder, <RESULT>-export.<format> beside a file)")
    export.add_argument("--overwrite", action="store_true", help="replace existing output files (default: refuse)")
    export.add_argument("--obj-frame", choices=list(get_args(ObjFrame)), default="output",
                        help="OBJ in the GLB's frame (output) or the input's own (input) (default: output)")
    export.add_argument("--reunwrap", action="store_true",
                        help="re-unwrap and re-bake a textured file into one new atlas (default: keep its "
                             "atlas, materials and texels exactly)")
    export.add_argument("--cameras", metavar="FILE.json", default=None,
                        help="also write the run's cameras (output frame) for nerfstudio and other tools "
                             "(default: none)")
    export.add_argument("--camera-format", choices=["auto", "transforms", "camera_path"], default="auto",
                        help="nerfstudio transforms.json or camera_path.json; auto picks camera_path when "
                             "the file name contains 'camera_path' (default: auto)")

    evaluate = add("eval", cmd_eval, "Measure a stylization: circles, style, content, seams, coverage.")
    evaluate.add_argument("result", metavar="RESULT", help="run folder or textured .glb/.obj")
    evaluate.add_argument("--metric", action="append", metavar="NAME", help="metric to compute (repeatable) (default: all)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as one JSON object")

    view = add("view", cmd_view, "Open a run folder or textured GLB/OBJ in a local web viewer (viser).")
    view.add_argument("result", metavar="RESULT", help="run folder or textured .glb/.obj")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to bind; 0.0.0.0 serves other machines too (default: 127.0.0.1)")
    view.add_argument("--port", type=int, default=8080,
                      help="port to serve on; the next free one if taken, 0 = any (default: 8080)")

    add("config", cmd_config, "List every config key with its type, default and meaning.")
    cache = add("cache", cmd_cache, "Show or empty the caches (UV atlases, view fragments, render hits).")
    cache.add_argument("action", choices=["info", "clear"], help="info: sizes and budgets; clear: delete entries")
    cache.add_argument("--kind", action="append", choices=["atlas", "fragments", "render"], default=None,
                       help="with clear: only this cache (repeatable; default: all)")


    batch = add("batch", cmd_batch, "Run every scene x style of a jobs file into OUT/<scene>__<style>/ "
                                    "(under torchrun: jobs spread over the ranks).")
    batch.add_argument("jobs", metavar="JOBS.toml", help="jobs file: out, scenes, styles, optional config, eval, [set]")

    add("scenes", cmd_scenes, "List the built-in scenes.")
    for sub in commands.choices.values():
        _show_defaults(sub)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's help ends with its default (or says it is required), unless it says it already."""
    for action in parser._actions:
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = action.help or ""
        if "default" in text or "required" in text:
            continue
        if action.required:
            suffix = "(required)"
        elif isinstance(action, argparse._StoreTrueAction):
            suffix = "(default: off)"
        elif action.default is None or isinstance(action, argparse._AppendAction):
            suffix = "(default: none)"
        else:
            suffix = f"(default: {action.default})"
        action.help = f"{text} {suffix}".strip()


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
    code = EXIT_INTERNAL
    try:
        code = _dispatch(argv)
        return code
    finally:
        if "torch.distributed" in sys.modules:
            _leave_process_group(code)


def _leave_process_group(code: int) -> None:
    """A torchrun rank leaves its process group and then the process, skipping the interpreter's
    teardown: in about one full test run in three, a rank whose run had finished was aborted at
    exit by gloo (SIGABRT, "terminate called without an active exception"; a C++ thread still
    joinable while Python tears down), and torchrun then failed the whole job. Everything the run
    writes is written and renamed by now; only the streams need a flush."""
    from meshstyle.common.distributed import shutdown

    if shutdown():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _dispatch(argv: Sequence[str] | None) -> int:
    from meshstyle.common.allocator import tune_allocator

    tune_allocator()
    from meshstyle.outputs import provenance

    provenance.invocation = ["meshstyle", *(sys.argv[1:] if argv is None else argv)]
    parser = build_parser()
    if not os.environ.get("MESHSTYLE_DEBUG"):
        # numpy's overflow/invalid-value warnings on absurd input are noise beside our one-line
        # error (the input is checked and reported by name); MESHSTYLE_DEBUG=1 shows them.
        import warnings

        warnings.filterwarnings("ignore", category=RuntimeWarning)
    previous_term = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
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
    except KeyboardInterrupt as interrupted:
        if not _is_main_rank():
            return EXIT_INTERRUPTED
        return _report_interrupt(interrupted)
    except OSError as error:
        from meshstyle.outputs.run_lock import is_disk_full

        if not is_disk_full(error) and error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            return _internal_error(error)
        where = f"{error.filename}: " if error.filename else ""
        print(f"meshstyle: {where}{error.strerror or error}; nothing was completed "
              "(a run folder without run.json is incomplete)", file=sys.stderr)
        return EXIT_INPUT
    except Exception as error:  # the last line of defence: one line, traceback only on request
        return _internal_error(error)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_term)


def _internal_error(error: BaseException) -> int:
    if os.environ.get("MESHSTYLE_DEBUG"):
        traceback.print_exc()
    print(f"meshstyle: internal error: {type(error).__name__}: {error} (set MESHSTYLE_DEBUG=1 for a traceback)",
          file=sys.stderr)
    return EXIT_INTERNAL


def _raise_terminated(signum: int, frame) -> None:
    """SIGTERM outside the optimiser loop: unwind like Ctrl-C, so locks and temporary files are
    cleaned up on the way out (the default action would kill the process on the spot)."""
    raise Interrupted(signum)


def _report_interrupt(interrupted: KeyboardInterrupt) -> int:
    """One honest line: a checkpoint is claimed only when one was written."""
    signum = getattr(interrupted, "signum", signal.SIGINT)
    name = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    checkpoint = getattr(interrupted, "checkpoint", None)
    if checkpoint is not None:
        step = getattr(interrupted, "step", None)
        at = f" at step {step}" if step is not None else ""
        message = f"{name}{at}; checkpoint written to {checkpoint} (continue with --resume)"
    else:
        message = f"{name} before any checkpoint was written; nothing to resume"
    print(f"meshstyle: {message}", file=sys.stderr)
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED
