"""Headless Chromium driven over the DevTools protocol: load a page, wait, take screenshots.

Test tooling only (and scripts/viewer_screenshot.py). It needs the Debian package `chromium`
(scripts/setup.sh installs it) and the `websockets` package, which viser already depends on, so
the browser test brings no dependency of its own. WebGL runs on SwiftShader, Chromium's CPU
renderer, so no GPU or display is needed.
"""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessBrowser:
    """One headless Chromium with one page, closed on exit."""

    def __init__(self, width: int = 960, height: int = 640, executable: str | None = None) -> None:
        from websockets.sync.client import connect

        executable = executable or find_browser()
        if executable is None:
            raise FileNotFoundError("no Chromium found (apt-get install chromium)")
        self.width, self.height = width, height
        self._profile = tempfile.TemporaryDirectory(prefix="meshstyle-chromium-")
        self._process = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu-sandbox", "--no-first-run",
             "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
             "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
             f"--window-size={width},{height}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = self._devtools_port(timeout=60.0)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
                targets = json.loads(reply.read())
            page = next(target for target in targets if target.get("type") == "page")
            self._socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        except BaseException:
            self.close()
            raise
        self._next_id = 0
        self.call("Emulation.setDeviceMetricsOverride",
                  width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _devtools_port(self, timeout: float) -> int:
        marker = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self._process.returncode}")
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        """Send one DevTools command and wait for its answer (events in between are dropped)."""
        self._next_id += 1
        message_id = self._next_id
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self) -> np.ndarray:
        """(H,W,3) uint8 of the page as it is drawn now."""
        import imageio.v3 as iio

        data = self.call("Page.captureScreenshot", format="png")["data"]
        return iio.imread(io.BytesIO(base64.b64decode(data)))[..., :3]

    def close(self) -> None:
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._profile.cleanup()

    def __enter__(self) -> "HeadlessBrowser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def canvas_box(browser: HeadlessBrowser) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the canvas with the largest drawing buffer: the 3-D view (viser also
    lays an empty 0x0 canvas over it)."""
    box = browser.evaluate(
        "(() => { let best = null; for (const c of document.querySelectorAll('canvas')) {"
        " const r = c.getBoundingClientRect(); if (!best || c.width * c.height > best[4])"
        " best = [r.left, r.top, r.right, r.bottom, c.width * c.height]; } return best; })()")
    if not box or box[4] < 100:
        return None
    return tuple(int(round(v)) for v in box[:4])
