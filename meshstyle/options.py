"""The config keys as users see them: `meshstyle config` and the generated `stylize` flags.

One source of truth: every key's type and default come from its dataclass field in config.py,
its one-line meaning from the comment on that field's line, its choices from a `Literal` type or
the field's `choices` metadata and its range from the `low`/`high` metadata. `config.FLAG_KEYS`
says which keys get a first-class flag.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from meshstyle import config as config_module
from meshstyle.config import FLAG_KEYS, StylizeConfig
from meshstyle.errors import InputError

LENGTH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}


@dataclass(frozen=True)
class KeyInfo:
    key: str                        # dotted path, e.g. loss.style_strength
    hint: Any                       # the field's type
    default: Any
    meaning: str                    # the comment on the field's line
    choices: tuple[str, ...]        # a closed set of values, or ()
    limits: dict[str, Any]          # the field's range metadata (low, high, ...), or {}

    @property
    def type_text(self) -> str:
        return type_text(self.hint)


def type_text(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        return f"{type_text(inner[0])} | none"
    if origin is Literal:
        return "choice"
    if origin is tuple:
        return f"list of {type_text(args[0])}"
    return getattr(hint, "__name__", str(hint))


@lru_cache(maxsize=None)
def field_comments(cls: type) -> dict[str, str]:
    """{field: the comment on its line} of a dataclass, from its source."""
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
        if match:
            comments[match.group(1)] = match.group(2).strip()
    return comments


def key_infos(config: Any = None, prefix: str = "") -> list[KeyInfo]:
    """Every config key with its type, default, meaning, choices and range, in declaration order."""
    config = config if config is not None else StylizeConfig()
    hints = get_type_hints(type(config), vars(config_module))
    comments = field_comments(type(config))
    infos = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            infos += key_infos(value, f"{prefix}{f.name}.")
            continue
        hint = hints[f.name]
        choices = tuple(get_args(hint)) if get_origin(hint) is Literal else tuple(f.metadata.get("choices") or ())
        infos.append(KeyInfo(prefix + f.name, hint, value, comments.get(f.name, ""), choices,
                             {k: v for k, v in f.metadata.items() if v not in (None, (), False)}))
    return infos


def info_of(key: str) -> KeyInfo:
    for info in key_infos():
        if info.key == key:
            return info
    raise KeyError(key)


def show_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(show_value(item) for item in value) or "none"
    return str(value)


def config_table() -> str:
    """`meshstyle config`: one line per key (key, type, default, meaning), grouped by stage."""
    infos = key_infos()
    width_key = max(len(info.key) for info in infos)
    width_type = max(len(info.type_text) for info in infos)
    width_default = min(24, max(len(show_value(info.default)) for info in infos))
    lines = [f"{'KEY':{width_key}}  {'TYPE':{width_type}}  {'DEFAULT':{width_default}}  MEANING"]
    flags = {key: flag for flag, key in FLAG_KEYS.items()}
    for info in infos:
        meaning = info.meaning
        if info.choices and len(info.choices) <= 8 and not all(c in meaning for c in info.choices):
            meaning += f" ({' | '.join(info.choices)})"
        if info.key in flags:
            meaning += f" [--{flags[info.key].replace('_', '-')}]"
        lines.append(f"{info.key:{width_key}}  {info.type_text:{width_type}}  "
                     f"{show_value(info.default):{width_default}}  {meaning}")
    return "\n".join(lines)


def parse_length(text: str) -> float:
    """'1.5m', '150cm', '1500mm' or a bare number of metres -> metres."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(m|cm|mm)?\s*", str(text).lower())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a length such as 1.5m, 40cm or 800mm, got '{text}'")
    metres = float(match.group(1)) * LENGTH_UNITS[match.group(2) or "m"]
    if metres <= 0:
        # 0 is the config's "from the style size"; as a flag it can only be a slip.
        raise argparse.ArgumentTypeError(f"expected a length above 0 such as 1.5m, got '{text}'")
    return metres


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `FLAG_KEYS` entry; its default is left None (= not given) so that the TOML file
    and --set still apply, and the key's default is shown in the help instead."""
    group = parser.add_argument_group("config keys (also settable in --config FILE.toml or with --set KEY=VALUE)")
    for flag, key in FLAG_KEYS.items():
        info = info_of(key)
        name = "--" + flag.replace("_", "-")
        help_text = info.meaning or key
        if key == "loss.style_extent":
            help_text = ("width of surface the whole style image covers when painted, e.g. 1.5m, 40cm, 800mm "
                         "(a stroke 1/20 of the painting wide becomes 1/20 of this on every surface)")
        elif key == "regions.styles":
            help_text = ("paint one region in its own style: NAME=IMAGE (file or built-in style) or NAME=keep "
                         "(its texels stay exactly as they were); repeatable; names come from the input's "
                         "materials, ScanNet labels or --regions FILE; other faces get --style")
        elif key == "regions.labels":
            help_text = "per-face region names: .npy (an integer or string per face) or .ply with a face 'label'"
        shown = {"loss.style_extent": "from style size", "loss.style_weights": "equal",
                 "regions.styles": "none: the main --style everywhere",
                 "regions.labels": "the input's materials or ScanNet labels"}.get(key, show_value(info.default))
        help_text += f" ({key}; default: {shown})"
        options: dict[str, Any] = {"default": None, "help": help_text, "dest": flag}
        base = info.hint
        if get_origin(base) in (Union, types.UnionType):
            base = next(arg for arg in get_args(base) if arg is not type(None))
        if base is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            if info.choices:
                options["choices"] = list(info.choices)
            if key == "loss.style_extent":
                options["type"], options["metavar"] = parse_length, "LENGTH"
            elif key == "regions.styles":
                # Repeated, one region each: `--region wall=a.jpg --region floor=keep`.
                options["action"], options["metavar"] = "append", "NAME=STYLE"
            elif key == "regions.labels":
                options["metavar"] = "FILE"
            elif get_origin(base) is tuple:
                inner = get_args(base)[0]
                options["nargs"], options["type"] = "+", inner if inner in (int, float) else str
                options["metavar"] = "W" if inner is float else "NAME"
            elif base in (int, float):
                options["type"] = base
                options["metavar"] = "N" if base is int else "X"
            else:
                options["metavar"] = "NAME" if not info.choices else None
        if options.get("metavar") is None:
            options.pop("metavar", None)
        group.add_argument(name, **options)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """{flag: value} of the generated flags that were given (for config.build_config)."""
    values = {flag: getattr(args, flag) for flag in FLAG_KEYS if getattr(args, flag, None) is not None}
    return {flag: tuple(value) if isinstance(value, list) else value for flag, value in values.items()}


def check_flag_keys() -> None:
    """Every FLAG_KEYS entry names a real key (a renamed key must not leave a dead flag)."""
    keys = {info.key for info in key_infos()}
    missing = sorted(set(FLAG_KEYS.values()) - keys)
    if missing:
        raise InputError("config.FLAG_KEYS", f"names unknown keys {', '.join(missing)}")
