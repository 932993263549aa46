"""One config dataclass per stage, composed into `StylizeConfig`.

Precedence (lowest first): dataclass defaults < TOML file < `--set key=value` < explicit CLI flags.
Keys are dotted paths into the composed config, e.g. `optim.iters` or `loss.style_weight`.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from meshstyle.errors import InputError


# VGG-19's layers, block by block (conv/relu pairs, then a pool): the layers a loss can read.
VGG19_BLOCK_SIZES = (2, 2, 4, 4, 4)
VGG19_LAYERS: tuple[str, ...] = tuple(
    name
    for block, size in enumerate(VGG19_BLOCK_SIZES, start=1)
    for name in [f"{kind}{block}_{i}" for i in range(1, size + 1) for kind in ("conv", "relu")] + [f"pool{block}"]
)

CameraKind = Literal["auto", "orbit", "walkthrough", "poses"]
Statistic = Literal["gram", "adain", "swd"]
ContentTarget = Literal["auto", "photo", "mesh"]
LayoutTarget = Literal["mesh", "content"]
Precision = Literal["auto", "float32", "bfloat16"]
UpAxis = Literal["auto", "x", "y", "z", "-x", "-y", "-z"]
Unit = Literal["m", "dm", "cm", "mm", "km", "in", "ft", "yd"]
ObjFrame = Literal["output", "input"]


def ranged(default: Any, low: float | None = None, high: float | None = None, *, above: bool = False,
           below: bool = False, also: tuple = (), choices: tuple = (), empty: bool = False) -> Any:
    """A field whose value (each item, for tuples) must lie in [low, high]; `above`/`below` make
    the bound strict, `also` lists extra allowed values (0 = "choose for me"), `choices` a closed set,
    `empty` lets a tuple have no items."""
    return field(default=default, metadata={"low": low, "high": high, "above": above, "below": below,
                                            "also": also, "choices": choices, "empty": empty})


@dataclass
class SceneConfig:
    mesh: str | None = None            # which mesh file inside a scan folder with several
    frames: str | None = None          # frame subset of a scan: "0:200:5" (start:stop:step) or "0,5,10"
    intrinsics: str | None = None      # a scan's intrinsics file (3x3/4x4 matrix or BundleFusion info.txt)
    reunwrap: bool = False             # ignore an existing UV atlas and unwrap again
    up: UpAxis = "auto"                # the input's up axis (auto: glTF/OBJ +y, PLY/STL/OFF +z, scans from the capture)
    units: Unit = "m"                  # the input's length unit, converted to metres


@dataclass
class CameraConfig:
    views: int = ranged(24, 1, 100_000)            # optimisation views (cap on chosen scan frames)
    kind: CameraKind = "auto"          # how generated views are placed (auto: a scan's poses, a walkthrough in rooms, else an orbit)
    min_coverage: float = ranged(0.05, 0.0, 1.0)   # drop views whose covered share of the image is below this
    holdout: int = ranged(4, 0, 10_000)            # extra views never trained on, for eval
    fov_deg: float = ranged(70.0, 0.0, 180.0, above=True, below=True)   # vertical field of view of generated cameras
    candidates: float = ranged(3.0, 1.0, 100.0)    # generated candidate views per optimisation view; the
                                                   # views seeing the most atlas texels are kept (1 = no choice)


@dataclass
class RasterConfig:
    image_height: int = ranged(192, 16, 8192)      # height of generated cameras and of the level that sees the reference depth
    levels: int = ranged(3, 1, 16)                 # pyramid levels from image_height up; level k has height image_height * level_scale**k
    near_levels: int = ranged(1, 0, 16)            # coarser levels below image_height, for surfaces nearer than the reference depth (README)
    level_scale: float = ranged(1.5, 1.0, 8.0, above=True)   # height ratio of neighbouring pyramid levels
    cache_dir: str | None = None       # default: ~/.cache/meshstyle/fragments


@dataclass
class TextureConfig:
    size: int = ranged(0, 16, 16384, also=(0,))      # atlas resolution (square); 0 = choose (texels_per_metre, else the views; README)
    texels_per_metre: float = ranged(0.0, 0.0)     # with size 0: this texel density; 0 = from the views (texels_per_pixel)
    texels_per_pixel: float = ranged(1.5, 0.0, above=True)   # with size 0 and no density: texels per painted pixel (README)
    max_size: int = ranged(2048, 64, 16384)        # largest side size 0 may choose
    pyramid_levels: int = ranged(4, 1, 16)         # Laplacian layers summed at lookup
    regularizer: float = ranged(0.0, 0.0)          # weight of the Laplacian-layer penalty


@dataclass
class LossConfig:
    style_weight: float = ranged(1.0, 0.0)         # weight of the style loss
    content_weight: float = ranged(0.1, 0.0)       # weight of the relu4_2 content loss; the colour layout holds regions (README)
    style_layers: tuple[str, ...] = ranged(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),   # VGG-19 layers whose statistics are matched
                                           choices=VGG19_LAYERS)
    style_layer_weights: tuple[float, ...] = ranged((1.0, 1.0, 1.0, 1.0, 1.0), 0.0)   # one weight per style layer
    content_layer: str = ranged("relu4_2", choices=VGG19_LAYERS)   # VGG-19 layer compared for the content loss
    statistic: Statistic = "gram"      # style statistic matched (--loss)
    style_only: bool = False           # texture synthesis: no content loss
    content_target: ContentTarget = "auto"   # what views should still resemble (auto: a scan's photos, else the mesh)
    layout_weight: float = ranged(1.0, 0.0)        # colour layout: large colour regions stay where the mesh has them (README)
    layout_blur: float = ranged(8.0, 0.0, above=True)   # sigma (pixels of a depth level) of the Gaussian that averages layout colours
    layout_target: LayoutTarget = "mesh"   # colours the layout holds: the mesh's own (one exposure for every view) or the content target
    tv_weight: float = ranged(0.0, 0.0)            # total-variation penalty on the texture (smooths speckle)
    preserve_color: bool = False       # recolour the style image to the scene's colours first (no palette step)
    style_strength: float = ranged(1.0, 0.0)       # scales the style terms and the palette step: ~0.3 tinted, 1 painted, 3 repainted
    nnfm_weight: float = ranged(0.0, 0.0)          # nearest-neighbour feature matching (ARF), scale-free like style_weight
    nnfm_layers: tuple[str, ...] = ranged(("relu3_1", "relu4_1"), choices=VGG19_LAYERS)   # VGG-19 layers NNFM matches
    palette: bool = True                           # match the initial texture's colour mean/covariance to the style first
    style_scales: tuple[float, ...] = ranged((1.0, 0.75, 0.5), 0.0, 4.0, above=True)   # style image pyramid
    style_size: int = ranged(384, 16, 4096)        # long side of the style image at scale 1
    depth_aware: bool = True           # strokes keep one world size at every depth (pyramid levels)
    angle_aware: bool = True           # weight pixels by cos(view angle), none beyond the threshold
    angle_threshold_deg: float = ranged(75.0, 0.0, 90.0, above=True)   # beyond this view angle, pixels get no gradient
    reference_depth: float = ranged(0.0, 0.0)      # metres seen at raster.image_height with the wanted stroke size; 0 = auto
    reference_depth_quantile: float = ranged(0.5, 0.0, 1.0)   # auto reference depth: this quantile of all views' depths
    level_blend: float = ranged(0.0, 0.0)          # width (in levels) of the depth cross-fade between two levels (0: a hard hand-over, README)
    min_level_share: float = ranged(0.10, 0.0, 1.0)   # a view's level holding less of its style weight than this is merged into its neighbour (README)
    patch_margin: int = ranged(16, 0, 4096)        # context pixels around each level's crop
    min_patch_size: int = ranged(48, 1, 4096)      # smallest crop side fed to VGG
    style_weights: tuple[float, ...] = ranged((1.0,), 0.0)   # mix of several styles' statistics, one weight per style (1.0 alone = equal)
    style_extent: float = ranged(0.0, 0.0)         # metres of surface the style image's width covers (stroke size); 0 = from style_size


@dataclass
class OptimConfig:
    iters: int = ranged(120, 1, 1_000_000)         # optimisation steps (120: demo < 3 min, a 200k-triangle scan < 5 min on 2 cores)
    lr: float = ranged(0.01, 0.0, above=True)      # Adam learning rate at the start (0.01 with the colour layout: README)
    lr_decay: float = ranged(0.1, 0.0, above=True)   # final lr = lr * lr_decay (exponential)
    views_per_step: int = ranged(0, 1, 4096, also=(0,))   # views whose losses are summed in one step (0 = auto: 1 on a CPU, 4 on a GPU)
    coarse_lr_scale: float = ranged(0.5, 0.0, above=True)   # learning-rate factor per coarser Laplacian layer (1 = plain Adam)
    checkpoint_every_s: float = ranged(120.0, 0.0, above=True)   # seconds between checkpoints
    precision: Precision = "auto"      # VGG convolutions: auto (bfloat16 where the CPU has native BF16) | float32 | bfloat16
    channels_last: bool = True         # VGG activations in NHWC memory layout (oneDNN's own; faster on every CPU measured, README)
    steps_scaler: float = ranged(0.0, 0.0)   # steps run = iters x this; 0 = 1 / torchrun ranks (distributed.scale_schedule)


@dataclass
class ExportConfig:
    obj_frame: ObjFrame = "output"     # stylized.obj in the GLB's frame (output) or the input's own (input)


@dataclass
class RegionConfig:
    styles: tuple[str, ...] = ranged((), empty=True)   # NAME=STYLE (image or built-in style) or NAME=keep, per region; other faces get the main style
    labels: str | None = None          # per-face label file naming the regions (.npy, or .ply with a face label); default: the input's materials / ScanNet labels


@dataclass
class StylizeConfig:
    scene: SceneConfig = field(default_factory=SceneConfig)
    cameras: CameraConfig = field(default_factory=CameraConfig)
    raster: RasterConfig = field(default_factory=RasterConfig)
    texture: TextureConfig = field(default_factory=TextureConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    seed: int = ranged(0, 0, 2**63 - 1)   # seed of every random choice (same seed, same texture)
    device: str = "cpu"                # cpu | cuda | cuda:N

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self, source: str = "config") -> "StylizeConfig":
        """Raise InputError naming the first key whose value is out of its range or choices."""
        validate(self, source)
        return self


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
    "layout_weight": "loss.layout_weight",
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
    "near_levels": "raster.near_levels",
    "lr": "optim.lr",
    "holdout": "cameras.holdout",
    "fov": "cameras.fov_deg",
    "precision": "optim.precision",
    "mesh": "scene.mesh",
    "frames": "scene.frames",
    "intrinsics": "scene.intrinsics",
    "up": "scene.up",
    "units": "scene.units",
    "obj_frame": "export.obj_frame",
    "region": "regions.styles",
    "regions": "regions.labels",
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
    """Set a dotted key, coercing to the field's type and checking its range; unknown keys are input errors."""
    *parents, leaf = key.split(".")
    target = config
    for part in parents:
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise unknown_key(key, source)
        target = getattr(target, part)
    fields = {f.name: f for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else {}
    if leaf not in fields or dataclasses.is_dataclass(getattr(target, leaf)):
        raise unknown_key(key, source)
    hint = get_type_hints(type(target))[leaf]
    coerced = _coerce(value, hint, key, source)
    _check(coerced, hint, fields[leaf].metadata, key, source)
    setattr(target, leaf, coerced)


def validate(config: Any, source: str = "config", prefix: str = "") -> None:
    """Check every key of a (possibly hand-built) config: types, choices and ranges."""
    hints = get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value):
            validate(value, source, key + ".")
            continue
        _check(value, hints[f.name], f.metadata, key, source)
    if isinstance(config, LossConfig) and len(config.style_layer_weights) < len(config.style_layers):
        # Extra weights are ignored (the first ones go with the layers), missing ones are an error.
        raise InputError(source, f"'{prefix}style_layer_weights' needs a weight per style layer "
                                 f"({len(config.style_layers)}), got {len(config.style_layer_weights)}")


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    try:
        if origin is Union:   # `X | None`
            if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
                return None
            (inner,) = [arg for arg in args if arg is not type(None)]
            return _coerce(value, inner, key, source)
        if origin is tuple:
            if isinstance(value, str):
                value = [item.strip() for item in value.strip("()[] ").split(",") if item.strip()]
            items = value if isinstance(value, (list, tuple)) else [value]
            return tuple(_coerce(item, args[0], key, source) for item in items)
        if origin is Literal:
            return str(value).strip()
        if hint is bool:
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower() == "true"
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError("expected an integer")
            return int(number)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"bad value {value!r} for '{key}': {exc}") from None


def _check(value: Any, hint: Any, limits: Any, key: str, source: str) -> None:
    """Raise InputError unless `value` has the field's type and lies in its choices and range."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union and value is None:
        return
    if origin is Union:
        hint = next(arg for arg in args if arg is not type(None))
        origin, args = get_origin(hint), get_args(hint)
    items = value if origin is tuple else (value,)
    if origin is tuple and not isinstance(value, tuple):
        raise InputError(source, f"bad value {value!r} for '{key}': expected a list")
    if origin is tuple and not items and not limits.get("empty"):
        raise InputError(source, f"bad value {value!r} for '{key}': expected at least one item")
    item_hint = args[0] if origin is tuple else hint
    for item in items:
        _check_item(item, item_hint, limits, key, source)


def _check_item(item: Any, hint: Any, limits: Any, key: str, source: str) -> None:
    def refuse(problem: str) -> None:
        raise InputError(source, f"bad value {item!r} for '{key}': {problem}")

    if get_origin(hint) is Literal:
        if item not in get_args(hint):
            refuse(f"expected one of {', '.join(get_args(hint))}")
        return
    if hint is bool:
        if not isinstance(item, bool):
            refuse("expected true or false")
        return
    if hint in (int, float):
        if isinstance(item, bool) or not isinstance(item, (int, float)) or (hint is int and not isinstance(item, int)):
            refuse(f"expected {'an integer' if hint is int else 'a number'}")
        if not math.isfinite(item):
            refuse("expected a finite number")
    elif hint is str and not isinstance(item, str):
        refuse("expected a string")
    choices = limits.get("choices") or ()
    if choices and item not in choices:
        shown = ", ".join(name for name in choices if not name.startswith("conv")) if len(choices) > 12 else ", ".join(choices)
        refuse(f"expected one of {shown}")
    low, high = limits.get("low"), limits.get("high")
    if item in (limits.get("also") or ()) or (low is None and high is None):
        return
    too_low = low is not None and (item <= low if limits.get("above") else item < low)
    too_high = high is not None and (item >= high if limits.get("below") else item > high)
    if too_low or too_high:
        refuse(f"expected {_describe(limits)}")


def _number(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _describe(limits: Any) -> str:
    low, high = limits.get("low"), limits.get("high")
    parts = []
    if low is not None:
        parts.append(f"{'>' if limits.get('above') else '>='} {_number(low)}")
    if high is not None:
        parts.append(f"{'<' if limits.get('below') else '<='} {_number(high)}")
    text = " and ".join(parts)
    also = limits.get("also") or ()
    return text + (f" (or {', '.join(str(a) for a in also)})" if also else "")


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a config file")
    if not path.is_file():
        raise InputError(path, "no such config file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"invalid TOML: {exc}") from None


def load_config(path: str | Path | None = None, **overrides: Any) -> StylizeConfig:
    """The run config of a TOML file (any keys of `meshstyle config`; None = the defaults), then
    dotted-key overrides given as keywords with "__" for ".", e.g. optim__iters=400."""
    return build_config(path, [f"{key.replace('__', '.')}={value}" for key, value in overrides.items()])


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
    validate(config, "config")
    return config
