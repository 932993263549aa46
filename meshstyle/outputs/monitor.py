"""Watching a run while it goes: snapshots on disk (`--snapshot-every`) and the live viewer (`--view`).

Both are `RunObserver`s that `pipeline.stylize` calls at three points: once the atlas, cameras and
style are ready (`started`), after every optimisation step (`stepped`, through the optimiser's
`on_step` hook), and with the finished result (`finished`). An observer never changes the run: the
texture it gets is a detached copy, made only when some observer asks for it.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from meshstyle.geometry.camera import Camera
from meshstyle.geometry.scene import TexturedMesh

SNAPSHOT_DIR = "snapshots"
SNAPSHOT_VIEWS = 3           # a few views are enough to judge a run early
SNAPSHOT_HEIGHT = 240
LIVE_MIN_INTERVAL_S = 2.0    # the live viewer gets a new texture at most this often (GLB + PNG encode)


@dataclass
class RunStart:
    """What an observer may need about a run, known before its first step."""
    mesh: TexturedMesh                  # geometry, atlas and the initial texture
    cameras: Sequence[Camera]           # optimisation views
    style_image: np.ndarray             # (H,W,3) float32, as used
    up: tuple[float, float, float]
    kind: str
    name: str
    iters: int
    first_step: int                     # 0, or the checkpoint's step on --resume
    out_dir: Path | None


class RunObserver:
    """Base class: every hook does nothing."""

    def started(self, run: RunStart) -> None:
        pass

    def stepped(self, step: int, record: dict[str, float], texture: Callable[[], np.ndarray]) -> None:
        """`step` counts completed steps (1-based); `texture()` is the current (H,W,3) texture."""

    def finished(self, texture: np.ndarray) -> None:
        pass


class SnapshotWriter(RunObserver):
    """Every `every` steps: OUT/snapshots/NNNN/texture.png and view-K.png of a few optimisation views."""

    def __init__(self, out_dir: Path, every: int, views: int = SNAPSHOT_VIEWS, height: int = SNAPSHOT_HEIGHT):
        if every < 1:
            raise ValueError("snapshot interval must be at least one step")
        self.folder = Path(out_dir) / SNAPSHOT_DIR
        self.every, self.views, self.height = every, views, height
        self.run: RunStart | None = None
        self.cameras: list[Camera] = []

    def started(self, run: RunStart) -> None:
        from meshstyle.outputs.run_folder import _spread

        self.run = run
        if run.first_step == 0 and self.folder.exists():
            # Snapshots of an earlier run in this folder (--overwrite) would read as this run's.
            shutil.rmtree(self.folder)
        self.cameras = [camera.scaled(self.height) for camera in _spread(list(run.cameras), self.views)]

    def stepped(self, step: int, record: dict[str, float], texture: Callable[[], np.ndarray]) -> None:
        if step % self.every == 0:
            self.write(step, texture())

    def folder_for(self, step: int) -> Path:
        digits = max(4, len(str(self.run.iters if self.run else step)))
        return self.folder / f"{step:0{digits}d}"

    def write(self, step: int, texture: np.ndarray) -> Path:
        from meshstyle.common.io import write_image
        from meshstyle.outputs.render import render_views

        assert self.run is not None, "started() first"
        folder = self.folder_for(step)
        mesh = self.run.mesh
        painted = TexturedMesh(mesh.vertices, mesh.faces, mesh.uv, texture)
        write_image(folder / "texture.png", texture)
        for index, view in enumerate(render_views(painted, self.cameras)):
            write_image(folder / f"view-{index}.png", view)
        return folder


class LiveView(RunObserver):
    """Feeds a `viewer.Viewer`: the mesh once the atlas exists, then the texture every few steps."""

    def __init__(self, viewer: Any, min_interval_s: float = LIVE_MIN_INTERVAL_S):
        self.viewer = viewer
        self.min_interval_s = min_interval_s
        self.iters = 0
        self.last_update = -np.inf
        self.updates = 0

    def started(self, run: RunStart) -> None:
        from meshstyle.outputs.viewer import ViewerContent

        self.iters = run.iters
        self.viewer.show(ViewerContent(mesh=run.mesh, original=run.mesh, cameras=tuple(run.cameras),
                                       style_image=run.style_image, up=run.up, kind=run.kind,
                                       title=run.name))
        self.viewer.set_status(f"step {run.first_step} of {run.iters}")

    def stepped(self, step: int, record: dict[str, float], texture: Callable[[], np.ndarray]) -> None:
        now = time.monotonic()
        if now - self.last_update < self.min_interval_s and step < self.iters:
            return
        self.viewer.update_texture(texture(), status=f"step {step} of {self.iters}, loss {record['total']:.3g}")
        self.last_update = time.monotonic()
        self.updates += 1

    def finished(self, texture: np.ndarray) -> None:
        self.viewer.update_texture(texture, status=f"finished: {self.iters} steps")


def step_hook(observers: Sequence[RunObserver], texture_of: Callable[[], np.ndarray]
              ) -> Callable[[int, dict[str, float]], None] | None:
    """The optimiser's `on_step` callback: the texture is copied out at most once per step."""
    if not observers:
        return None

    def on_step(step: int, record: dict[str, float]) -> None:
        cached: list[np.ndarray] = []

        def texture() -> np.ndarray:
            if not cached:
                cached.append(texture_of())
            return cached[0]

        for observer in observers:
            observer.stepped(step, record, texture)

    return on_step
