"""Where a run came from, as recorded in run.json: command line, version, time, inputs and their hashes.

Input fingerprints hash file contents (sha256), so a changed mesh, texture or style image shows
even when its name did not change. A scan folder is fingerprinted by its listing (relative paths and
sizes of every file): hashing thousands of photos would take longer than the run's first stages.
"""
from __future__ import annotations

import datetime
import hashlib
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK = 1 << 20
# Set by the CLI to the arguments it parses (they may not come from sys.argv when called in process).
invocation: list[str] | None = None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it again (`meshstyle ...` rather than the script's path)."""
    argv = list(argv if argv is not None else (invocation if invocation is not None else sys.argv))
    if argv and (Path(argv[0]).name in ("meshstyle", "__main__.py") or argv[0] == "-m"):
        argv[0] = "meshstyle"
    return shlex.join(argv)


def run_provenance() -> dict[str, Any]:
    from meshstyle import __version__

    return {"command_line": command_line(), "meshstyle": __version__,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cwd": str(Path.cwd())}


def input_fingerprint(source: str | Path) -> dict[str, Any]:
    """A mesh file (with the MTL and textures an OBJ names), a scan folder, or a built-in name."""
    path = Path(source)
    if path.is_file():
        record: dict[str, Any] = {"path": str(path.resolve()), "sha256": file_sha256(path),
                                  "bytes": path.stat().st_size}
        companions = _obj_companions(path) if path.suffix.lower() == ".obj" else []
        if companions:
            record["companions"] = {str(other.relative_to(path.parent)): file_sha256(other) for other in companions}
        return record
    if path.is_dir():
        files = sorted(item for item in path.rglob("*") if item.is_file())
        listing = hashlib.sha256()
        for item in files:
            listing.update(f"{item.relative_to(path).as_posix()}\0{item.stat().st_size}\n".encode())
        return {"path": str(path.resolve()), "files": len(files), "listing_sha256": listing.hexdigest()}
    return {"built_in": str(source)}


def _obj_companions(path: Path) -> list[Path]:
    found = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    for library in re.findall(r"^mtllib\s+(.+)$", text, flags=re.MULTILINE):
        library_path = path.parent / library.strip()
        if not library_path.is_file():
            continue
        found.append(library_path)
        for name in re.findall(r"^\s*map_Kd\s+(.+)$", library_path.read_text(errors="replace"), flags=re.MULTILINE):
            texture = library_path.parent / name.split()[-1]
            if texture.is_file():
                found.append(texture)
    return found


def style_record(style: Any) -> Any:
    """A style as given to `stylize`: an image file (path + sha256), a built-in name, or an array
    (sha256 of its pixels); a list of styles gives a list."""
    if isinstance(style, (list, tuple)):
        return [style_record(item) for item in style]
    if isinstance(style, np.ndarray):
        pixels = np.ascontiguousarray(style)
        return {"array": list(pixels.shape), "sha256": hashlib.sha256(pixels.tobytes()).hexdigest()}
    path = Path(str(style))
    if path.is_file():
        return {"path": str(path.resolve()), "sha256": file_sha256(path)}
    return {"built_in": str(style)}
