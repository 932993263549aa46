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


MESH_RESULT_SUFFIXES = (".glb", ".gltf", ".obj")


def check_result_path(path: str | Path) -> Path:
    """What `render`, `eval`, `view` and `export` read (a run folder or a textured .glb/.gltf/.obj),
    checked with the standard library alone, so bad input is refused before torch and open3d load.

    A run folder needs run.json (written last: without it the run is incomplete) that is a JSON
    object of a version this meshstyle reads, and its stylized mesh; a file needs a known suffix and
    content that can be one (a .glb starts with the binary glTF magic)."""
    from meshstyle.outputs.run_info import RUN_VERSION

    path = Path(path)
    try:
        if path.is_dir():
            mesh_file = next((path / name for name in ("stylized.glb", "stylized.obj") if (path / name).is_file()), None)
            run_json = path / "run.json"
            if not run_json.is_file():
                if run_json.exists():
                    raise InputError(run_json, "is not a file")
                if mesh_file is None and not (path / "checkpoint.pt").is_file():
                    raise InputError(path, "not a run folder: no run.json, stylized.glb or stylized.obj")
                raise InputError(path, "incomplete run (no run.json: interrupted or failed while writing); "
                                       "finish it with `meshstyle stylize ... --resume`")
            if mesh_file is None:
                raise InputError(path, "incomplete run: run.json but no stylized.glb or stylized.obj")
            try:
                data = json.loads(run_json.read_bytes())
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputError(run_json, f"invalid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise InputError(run_json, "expected a JSON object")
            version = data.get("version", RUN_VERSION)
            if version != RUN_VERSION:
                raise InputError(run_json, f"run.json version {version!r} is not one this meshstyle reads "
                                           f"(it reads version {RUN_VERSION}); written by another meshstyle version?")
            _check_mesh_content(mesh_file)
            return path
        if not path.exists():
            raise InputError(path, "no such file or folder" if not path.is_symlink() else "a symbolic link that leads nowhere (broken or a loop)")
        if path.suffix.lower() not in MESH_RESULT_SUFFIXES:
            raise InputError(path, "expected a run folder or a textured .glb/.gltf/.obj")
        if not path.is_file():
            raise InputError(path, "is not a regular file")
        _check_mesh_content(path)
        return path
    except OSError as exc:   # no permission, a symlink loop, a name too long
        raise InputError(exc.filename or path, exc.strerror or type(exc).__name__) from None


def _check_mesh_content(path: Path) -> None:
    """The first bytes of a mesh file fit its suffix: an empty file or a text file named .glb fails
    here with a message about its content, not deep inside a loader."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        raise InputError(path, "is empty")
    suffix = path.suffix.lower()
    if suffix == ".glb" and not head.startswith(b"glTF"):
        raise InputError(path, "is not a binary glTF file (no 'glTF' magic at its start)")
    if suffix == ".gltf" and not head.lstrip().startswith(b"{"):
        raise InputError(path, "is not a glTF JSON file (it does not start with '{')")
