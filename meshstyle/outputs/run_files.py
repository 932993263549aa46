"""Which files in a run folder meshstyle wrote, so that `--overwrite` removes exactly those.

A folder is cleared only when everything in it is ours: the names a run, `eval`, `render` and
`export` write by default (below), the files listed in the previous run.json's "files", and the
temporary and lock files of our own writers. Anything else is the user's: `--overwrite` then
refuses (exit 2) instead of deleting it or leaving a mix of two runs.
"""
from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

from meshstyle.errors import InputError

# Relative paths (fnmatch patterns, "/" separated) of what meshstyle writes into a run folder.
OWN_PATTERNS = (
    "run.json", "eval.json", "checkpoint.pt", "texture.png", "initial_texture.png", "contact_sheet.png",
    "style.png", "style_*.png", "style-*.png", "screenshots/*", "stylized.glb", "stylized.obj", "stylized.mtl",
    "views/[0-9][0-9][0-9][0-9].png", "snapshots/*",
    "render/[0-9][0-9][0-9][0-9].png", "render/*.mp4",
    "export.glb", "export.obj", "export.mtl", "export.png", "cameras*.json", "transforms.json", "camera_path.json",
    ".*.tmp*", "*/.*.tmp*", ".meshstyle*", "*.lock",
)
# Folders that hold only files of ours; removed once empty.
OWN_FOLDERS = ("views", "snapshots", "render", "screenshots")


def _relative_files(folder: Path) -> list[str]:
    return sorted(item.relative_to(folder).as_posix() for item in folder.rglob("*") if not item.is_dir())


def _listed_in_run_json(folder: Path) -> set[str]:
    try:
        files = json.loads((folder / "run.json").read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {name for name in files if isinstance(name, str)}


def is_own(name: str, listed: set[str] = frozenset()) -> bool:
    return name in listed or any(fnmatch.fnmatchcase(name, pattern) for pattern in OWN_PATTERNS)


def foreign_files(folder: str | Path) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    listed = _listed_in_run_json(folder)
    return [name for name in _relative_files(folder) if not is_own(name, listed)]


def clear_run_folder(folder: str | Path, keep: tuple[str, ...] = ()) -> list[str]:
    """Delete the files a previous run left in `folder` (all of them ours, else InputError);
    `keep`: patterns of files the current run already wrote. Returns what was deleted."""
    folder = Path(folder)
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise InputError(folder, "output path exists and is not a folder")
    foreign = foreign_files(folder)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InputError(folder, f"holds files meshstyle did not write ({shown}); --overwrite only replaces "
                                 "a run folder: choose another --out or move them away")
    removed = []
    for name in _relative_files(folder):
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in keep) or name.endswith(".lock"):
            continue  # a lock belongs to the run holding the folder now
        (folder / name).unlink(missing_ok=True)
        removed.append(name)
    for sub in OWN_FOLDERS:
        path = folder / sub
        if path.is_dir() and not any(path.iterdir()):
            shutil.rmtree(path, ignore_errors=True)
    return removed


def remove_stale_frames(folder: str | Path, count: int) -> list[str]:
    """After writing frames 0000.png .. count-1, delete higher-numbered frames of an older render."""
    folder = Path(folder)
    stale = sorted(path for path in folder.glob("[0-9][0-9][0-9][0-9].png") if int(path.stem) >= count)
    for path in stale:
        path.unlink(missing_ok=True)
    return [path.name for path in stale]
