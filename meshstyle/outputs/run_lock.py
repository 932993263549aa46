"""Owning a run folder: writability checked before any work, one run at a time, no stale leftovers.

A run takes `.meshstyle.lock` (O_EXCL) in its folder before it reads the scene. The lock records
the owner's host, pid and process start time, so a lock left by a killed process (SIGKILL, power
loss) is recognised as stale, reported, and taken over; a live owner makes a second run exit 2 at
once. Hidden temporary files of `io.atomic_path` left by a killed writer are removed while the lock
is held (nobody else can be writing them then).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

from meshstyle.errors import InputError
from meshstyle.common.progress import warn

LOCK_NAME = ".meshstyle.lock"
# Names io.atomic_path gives its temporary files: ".<stem>.<random>.tmp<suffix>".
TEMP_GLOB = ".*.tmp*"


def check_writable_dir(path: str | Path, what: str = "output folder") -> None:
    """Exit-2 errors for a folder that cannot be created or written: a file in the way, a read-only
    mount, /proc, no permission. Creates nothing that stays (a probe file is removed)."""
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise InputError(path, f"cannot create the {what}: '{existing}' is a file, not a folder")
    probe_dir = existing if existing.is_dir() else path
    try:
        fd, probe = tempfile.mkstemp(prefix=".meshstyle-probe.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(path, f"{what} is not writable ({exc.strerror or type(exc).__name__})") from None


def check_free_space(path: str | Path, needed_bytes: int, what: str = "output folder") -> None:
    """Refuse up front when the file system clearly cannot hold the outputs."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        stats = os.statvfs(existing)
    except OSError:
        return
    free = stats.f_bavail * stats.f_frsize
    if free < needed_bytes:
        raise InputError(path, f"only {free / 2**20:.0f} MiB free on the {what}'s file system; "
                               f"the run needs about {needed_bytes / 2**20:.0f} MiB")


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(owner: dict) -> bool | None:
    """True/False for a lock of this host; None when it cannot be told (another host, unreadable)."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    started = owner.get("start_time")
    if started is not None and Path("/proc").is_dir():
        return _start_time(pid) == started
    return True


class RunLock:
    """The lock file of one run folder; use as a context manager (see `owned_run_folder`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            except OSError as exc:
                raise InputError(self.folder, f"cannot create the run lock ({exc.strerror})") from None
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "start_time": _start_time(os.getpid()),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            with os.fdopen(fd, "w") as handle:
                json.dump(owner, handle)
            self.held = True
            return
        raise InputError(self.folder, f"could not take the run lock {LOCK_NAME} (another run keeps taking it)")

    def _handle_existing(self) -> None:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except FileNotFoundError:
            return  # released meanwhile: try again
        except (OSError, ValueError):
            owner = {}
        if not isinstance(owner, dict):
            owner = {}
        alive = _alive(owner)
        if alive:
            raise InputError(self.folder, f"another run (pid {owner['pid']}) is writing to this folder; "
                                          "wait for it or choose another --out")
        if alive is None and owner.get("host") not in (None, socket.gethostname()):
            raise InputError(self.folder, f"locked by a run on host {owner.get('host')} (pid {owner.get('pid')}); "
                                          f"if no run is using it, delete {self.path}")
        if alive is None and "pid" in owner:
            raise InputError(self.folder, f"locked by pid {owner.get('pid')}, whose state cannot be checked; "
                                          f"if no run is using it, delete {self.path}")
        # Stale: its process is gone (killed without cleanup), or the lock is empty/garbled because
        # its writer died between creating and filling it. Move it aside atomically, so two runs
        # that both find it stale cannot both take over.
        aside = self.folder / f"{LOCK_NAME}.stale.{os.getpid()}"
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        aside.unlink(missing_ok=True)
        what = f"process {owner['pid']}, no longer running" if "pid" in owner else "unreadable owner"
        warn(f"{self.folder}: removed a stale run lock ({what})")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(owner, dict) and owner.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temporary files a killed writer left (only safe while holding the folder's lock)."""
    removed = 0
    for pattern in (TEMP_GLOB, f"*/{TEMP_GLOB}"):
        for path in Path(folder).glob(pattern):
            if path.is_file() and path.name != LOCK_NAME:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
    return removed


@contextlib.contextmanager
def owned_run_folder(folder: str | Path) -> Iterator[Path]:
    """Create `folder` if needed, check it is writable, hold its lock while the block runs, clear
    leftovers of killed runs; on exit release the lock and remove the folder again if this call
    created it and the run left nothing in it."""
    folder = Path(folder)
    check_writable_dir(folder, "output folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(folder, f"cannot create the output folder ({exc.strerror})") from None
    lock = RunLock(folder)
    try:
        lock.acquire()
        remove_stale_temp_files(folder)
        yield folder
    finally:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()   # only succeeds when empty


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
