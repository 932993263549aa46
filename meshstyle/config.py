"""One config dataclass per stage, composed into `StylizeConfig`.

Precedence (lowest first): dataclass defaults < TOML file < `--set key=value` < explicit CLI flags.
Keys are dotted paths into the composed config, e.g. `optim.iters` or `loss.style_weight`.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from .errors import InputError


@dataclass
class SceneConfig:
    mesh: str | None = None            # which mesh file inside a scan folder with several
    frames: str | None = None          # frame subset of a scan: "0:200:5" (start:stop:step) or "0,5,10"
    intrinsics: str | None = None      # a scan's intrinsics file (3x3/4x4 matrix or BundleFusion info.txt)
    reunwrap: bool = False             # ignore an existing UV atlas and unwrap again


@dataclass
class CameraConfig:
    views: int = 24                    # optimisation views (cap on chosen scan frames)
    kind: str = "auto"                 # auto | orbit | walkthrough | poses
    min_coverage: float = 0.05         # drop views whose covered share of the image is below this
    holdout: int = 4                   # extra views never trained on, for eval
    fov_deg: float = 70.0              # vertical field of view of generated cameras


@dataclass
class RasterConfig:
    image_height: int = 192            # height of the coarsest pyramid level
    levels: int = 3                    # pyramid levels; level k has height image_height * level_scale**k
    level_scale: float = 1.5
    cache_dir: str | None = None       # default: ~/.cache/meshstyle/fragments


@dataclass
class TextureConfig:
    size: int = 1024                   # atlas resolution (square); 0 = choose from texel density
    texels_per_metre: float = 200.0    # used when size = 0
    pyramid_levels: int = 4            # Laplacian layers summed at lookup
    regularizer: float = 0.0           # weight of the Laplacian-layer penalty


@dataclass
class LossConfig:
    style_weight: float = 1.0
    content_weight: float = 0.05
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    content_layer: str = "relu4_2"
    statistic: str = "gram"            # gram | adain
    style_only: bool = False           # texture synthesis: no content loss
    content_target: str = "auto"       # auto | photo | mesh
    tv_weight: float = 0.0
    preserve_color: bool = False
    style_strength: float = 1.0        # scales the style terms and the palette step: ~0.3 tinted, 1 painted, 3 repainted
    nnfm_weight: float = 0.0           # nearest-neighbour feature matching (ARF), scale-free like style_weight
    nnfm_layers: tuple[str, ...] = ("relu3_1", "relu4_1")
    palette: bool = True               # match the initial texture's colour mean/covariance to the style first
    style_scales: tuple[float, ...] = (1.0, 0.75, 0.5)   # style image pyramid
    style_size: int = 384              # long side of the style image at scale 1
    depth_aware: bool = True
    angle_aware: bool = True
    angle_threshold_deg: float = 75.0  # beyond this view angle, pixels get no gradient
    reference_depth: float = 0.0       # metres at which the coarsest level has the stroke size; 0 = auto
    reference_depth_quantile: float = 0.5   # auto reference depth: this quantile of all views' depths
    level_blend: float = 0.5           # width (in levels) of the depth cross-fade between two levels
    min_level_share: float = 0.03      # skip a view's level holding less of its style weight than this
    patch_margin: int = 16             # context pixels around each level's crop
    min_patch_size: int = 48           # smallest crop side fed to VGG


@dataclass
class OptimConfig:
    iters: int = 200
    lr: float = 0.02
    lr_decay: float = 0.1              # final lr = lr * lr_decay (exponential)
    views_per_step: int = 1
    coarse_lr_scale: float = 1.0       # learning-rate factor per coarser Laplacian layer (1 = plain Adam)
    checkpoint_every_s: float = 120.0
    precision: str = "auto"            # VGG convolutions: auto (bfloat16 where the CPU has native BF16) | float32 | bfloat16
    channels_last: bool = False        # VGG activations in NHWC memory layout


@dataclass
class StylizeConfig:
    scene: SceneConfig = field(default_factory=SceneConfig)
    cameras: CameraConfig = field(default_factory=CameraConfig)
    raster: RasterConfig = field(default_factory=RasterConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "StylizeConfig":
        config = cls()
        for key, value in flatten(values).items():
            set_key(config, key, value, source)
        return config


# CLI flags that are shorthands for config keys.
FLAG_KEYS = {
    "iters": "optim.iters",
    "views": "cameras.views",
    "texture_size": "texture.size",
    "image_height": "raster.image_height",
    "seed": "seed",
    "device": "device",
}


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def set_key(config: Any, key: str, value: Any, source: str) -> None:
    """Set a dotted key, coercing to the field's type; unknown keys are input errors."""
    *parents, leaf = key.split(".")
    target = config
    for part in parents:
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise InputError(source, f"unknown config key '{key}'")
        target = getattr(target, part)
    names = {f.name for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else set()
    if leaf not in names:
        raise InputError(source, f"unknown config key '{key}'")
    hint = get_type_hints(type(target))[leaf]
    setattr(target, leaf, _coerce(value, hint, key, source))


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    text = str(hint)
    try:
        if isinstance(value, str):
            value = _parse_literal(value, text)
        if "tuple" in text:
            items = value if isinstance(value, (list, tuple)) else [value]
            inner = float if "float" in text else str
            return tuple(inner(item) for item in items)
        if hint is bool:
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected an integer")
            return int(value)
        if hint is float:
            return float(value)
        if "None" in text and value in (None, "", "none"):
            return None
        return str(value) if "str" in text else value
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"bad value {value!r} for '{key}': {exc}") from None


def _parse_literal(text: str, hint_text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if "tuple" in hint_text:
        return [item.strip() for item in text.strip("()[] ").split(",") if item.strip()]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such config file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"invalid TOML: {exc}") from None


def build_config(toml_path: str | Path | None = None, overrides: list[str] = (),
                 flags: dict[str, Any] | None = None) -> StylizeConfig:
    """Compose defaults < TOML < --set overrides < explicit flags (None means not given)."""
    config = StylizeConfig()
    if toml_path is not None:
        for key, value in flatten(load_toml(toml_path)).items():
            set_key(config, key, value, str(toml_path))
    for item in overrides:
        if "=" not in item:
            raise InputError("--set", f"expected KEY=VALUE, got '{item}'")
        key, value = item.split("=", 1)
        set_key(config, key.strip(), value.strip(), "--set")
    for flag, value in (flags or {}).items():
        if value is not None:
            set_key(config, FLAG_KEYS[flag], value, f"--{flag.replace('_', '-')}")
    return config
