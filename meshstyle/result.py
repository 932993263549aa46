"""A stylization's result in memory, and the run folder it is saved as (DESIGN.md "Run folder")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cameras import Camera
from .config import StylizeConfig
from .scene import Scene, TexturedMesh


@dataclass
class StylizeResult:
    mesh: TexturedMesh              # the stylized texture on the scene's geometry and atlas
    original: TexturedMesh          # same atlas, the initial texture (the mesh's own appearance)
    cameras: list[Camera]           # optimisation views
    holdout: list[Camera]           # views never trained on (evaluation)
    style_image: np.ndarray         # (H,W,3) float32, as used for the style targets
    config: StylizeConfig
    scene: Scene
    history: list[dict[str, float]] = field(default_factory=list)   # per step: step, loss, style, content, ...
    timings: dict[str, float] = field(default_factory=dict)         # seconds per stage
    info: dict[str, Any] = field(default_factory=dict)              # atlas figures, coverage, dropped views, ...
    checkpoint: dict[str, Any] | None = None                        # texture + optimiser state for --resume
