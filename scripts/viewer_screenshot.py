"""Screenshot of `meshstyle view` in headless Chromium, for README (docs/viewer.png).

    python scripts/viewer_screenshot.py RUN_FOLDER docs/viewer.png [--size 960x600]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import HeadlessBrowser  # noqa: E402

from meshstyle.outputs.run_folder import load_result  # noqa: E402
from meshstyle.outputs.viewer import Viewer, content_of  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--size", default="960x600")
    parser.add_argument("--wait", type=float, default=40.0, help="seconds for the page to draw")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    viewer = Viewer(port=0)
    try:
        viewer.show(content_of(load_result(args.run)))
        with HeadlessBrowser(width, height) as browser:
            browser.goto(viewer.url)
            time.sleep(args.wait)
            # SwiftShader makes the page warn about software rendering; not what a user sees.
            browser.evaluate("document.querySelectorAll('.mantine-Notification-root, [class*=Notification]')"
                             ".forEach(e => e.remove())")
            time.sleep(1.0)
            image = browser.screenshot()
    finally:
        viewer.close()
    import imageio.v3 as iio

    iio.imwrite(args.out, np.ascontiguousarray(image), optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
