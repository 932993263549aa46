"""Shared by the attack-style test modules (test_attack_*.py): real CLI processes, tiny runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# The smallest run that still goes through every stage (atlas, cameras, raster, VGG, optimiser, save).
TINY = ["--views", "2", "--texture-size", "64", "--image-height", "32", "--set", "cameras.holdout=0",
        "--set", "loss.style_size=64", "--set", "loss.style_scales=1.0", "--set", "raster.levels=1"]


def cli_env(cache: Path | None = None, quiet: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MESHSTYLE_DEBUG", None)
    if quiet:
        env["MESHSTYLE_QUIET"] = "1"
    else:
        env.pop("MESHSTYLE_QUIET", None)
    if cache is not None:
        env["MESHSTYLE_CACHE"] = str(cache)
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def run_cli(*args: str, cache: Path | None = None, cwd: Path | None = None, timeout: float = 300,
            **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meshstyle", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=cli_env(cache), timeout=timeout, **options)


def error_line(stderr: str) -> str:
    """The one error line (warnings aside); fails on a traceback or several error lines."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("meshstyle: warning:")]
    assert len(lines) == 1, f"expected one error line, got: {stderr!r}"
    assert lines[0].startswith("meshstyle: "), lines[0]
    return lines[0]


def no_temp_files(folder: Path) -> list[Path]:
    return [path for path in Path(folder).rglob(".*.tmp*")]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class LiveRun:
    """A `meshstyle` process whose stderr (progress bars included) is collected as it comes."""

    def __init__(self, *args: str, cache: Path | None = None, **options):
        # A shell's background job (`make test &`, nohup) starts with SIGINT ignored, which Python
        # then keeps, so Ctrl-C would never reach the run: the child gets the default disposition,
        # as a user's terminal gives it.
        self.process = subprocess.Popen([sys.executable, "-m", "meshstyle", *map(str, args)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        env=cli_env(cache, quiet=False),
                                        preexec_fn=_default_sigint, **options)
        self.stderr = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            chunk = self.process.stderr.read1(4096)
            if not chunk:
                return
            self.stderr += chunk

    def wait_for(self, text: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.stderr:
            if self.process.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"process ended before '{text}': {self.text()[-2000:]}")
            assert time.monotonic() < deadline, f"no '{text}' within {timeout} s: {self.text()[-2000:]}"
            time.sleep(0.05)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def text(self) -> str:
        return self.stderr.decode(errors="replace")

    def final_lines(self) -> list[str]:
        """stderr without progress-bar redraws and stage logs: warnings and the final message."""
        lines = [part.strip() for part in self.text().replace("\r", "\n").splitlines()]
        return [line for line in lines if line.startswith("meshstyle: ") and not line.split(":")[1].strip()
                in ("atlas", "cameras", "raster", "targets", "optimise")]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
