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

from meshstyle.errors import InputError


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
    level_scale: float = 1.5           # height ratio of neighbouring pyramid levels
    cache_dir: str | None = None       # default: ~/.cache/meshstyle/fragments


@dataclass
class TextureConfig:
    size: int = 1024                   # atlas resolution (square); 0 = choose from texel density
    texels_per_metre: float = 200.0    # used when size = 0
    pyramid_levels: int = 4            # Laplacian layers summed at lookup
    regularizer: float = 0.0           # weight of the Laplacian-layer penalty


@dataclass
class LossConfig:
    style_weight: float = 1.0          # weight of the style loss
    content_weight: float = 0.05       # weight of the content loss (keeps the scene recognisable)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")   # VGG-19 layers whose statistics are matched
    style_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)   # one weight per style layer
    content_layer: str = "relu4_2"     # VGG-19 layer compared for the content loss
    statistic: str = "gram"            # style statistic matched: gram | adain
    style_only: bool = False           # texture synthesis: no content loss
    content_target: str = "auto"       # what views should still resemble: auto | photo | mesh
    tv_weight: float = 0.0             # total-variation penalty on the texture (smooths speckle)
    preserve_color: bool = False       # recolour the style image to the scene's colours first
    style_strength: float = 1.0        # blends style weight against content weight
    style_scales: tuple[float, ...] = (1.0, 0.75, 0.5)   # style image pyramid
    style_size: int = 384              # long side of the style image at scale 1
    depth_aware: bool = True           # strokes keep one world size at every depth (pyramid levels)
    angle_aware: bool = True           # weight pixels by cos(view angle), none beyond the threshold
    angle_threshold_deg: float = 75.0  # beyond this view angle, pixels get no gradient
    reference_depth: float = 0.0       # metres at which the coarsest level has the stroke size; 0 = auto
    reference_depth_quantile: float = 0.5   # auto reference depth: this quantile of all views' depths
    level_blend: float = 0.5           # width (in levels) of the depth cross-fade between two levels
    min_level_share: float = 0.03      # skip a view's level holding less of its style weight than this
    patch_margin: int = 16             # context pixels around each level's crop
    min_patch_size: int = 48           # smallest crop side fed to VGG
    style_weights: tuple[float, ...] = (1.0,)   # mix of several styles' statistics, one weight per style (1.0 alone = equal)
    style_extent: float = 0.0          # metres of surface the style image's width covers (stroke size); 0 = from style_size


@dataclass
class OptimConfig:
    iters: int = 200                   # optimisation steps
    lr: float = 0.02                   # Adam learning rate at the start
    lr_decay: float = 0.1              # final lr = lr * lr_decay (exponential)
    views_per_step: int = 1            # views whose losses are summed in one step
    coarse_lr_scale: float = 1.0       # learning-rate factor per coarser Laplacian layer (1 = plain Adam)
    checkpoint_every_s: float = 120.0  # seconds between checkpoints
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
    seed: int = 0                      # seed of every random choice (same seed, same texture)
    device: str = "cpu"                # cpu | cuda | cuda:N

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "StylizeConfig":
        config = cls()
        for key, value in flatten(values).items():
            set_key(config, key, value, source)
        return config


# First-class CLI flags of `stylize` (`--style-strength` sets loss.style_strength): the keys users
# tune. cli.py generates each flag's type, choices, help and shown default from the key's field.
FLAG_KEYS = {
    "iters": "optim.iters",
    "views": "cameras.views",
    "texture_size": "texture.size",
    "image_height": "raster.image_height",
    "seed": "seed",
    "device": "device",
    "style_strength": "loss.style_strength",
    "style_weight": "loss.style_weight",
    "content_weight": "loss.content_weight",
    "preserve_color": "loss.preserve_color",
    "tv_weight": "loss.tv_weight",
    "loss": "loss.statistic",
    "style_only": "loss.style_only",
    "content_target": "loss.content_target",
    "style_size": "loss.style_size",
    "style_extent": "loss.style_extent",
    "style_weights": "loss.style_weights",
    "depth_aware": "loss.depth_aware",
    "angle_aware": "loss.angle_aware",
    "reference_depth": "loss.reference_depth",
    "levels": "raster.levels",
    "lr": "optim.lr",
    "holdout": "cameras.holdout",
    "fov": "cameras.fov_deg",
    "precision": "optim.precision",
    "mesh": "scene.mesh",
    "frames": "scene.frames",
    "intrinsics": "scene.intrinsics",
}


def all_keys(config: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key of the composed config, in declaration order."""
    config = config if config is not None else StylizeConfig()
    keys = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            keys += all_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def unknown_key(key: str, source: str) -> InputError:
    """The error for a misspelt key, naming the nearest valid one (whole key or its last part)."""
    import difflib

    keys = all_keys()
    guess = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not guess:
        leaves = {k.rsplit(".", 1)[-1]: k for k in keys}
        near = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(leaves), n=1, cutoff=0.6)
        guess = [leaves[near[0]]] if near else []
    hint = f"; did you mean '{guess[0]}'?" if guess else " (`meshstyle config` lists every key)"
    return InputError(source, f"unknown config key '{key}'{hint}")


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
            raise unknown_key(key, source)
        target = getattr(target, part)
    names = {f.name for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else set()
    if leaf not in names:
        raise unknown_key(key, source)
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
