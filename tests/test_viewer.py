"""The viewer and the run monitors, as a user meets them.

One small real run (`stylize --view --snapshot-every 2`) is shared: the live viewer must answer
while it goes, snapshots must land at the right steps, and `meshstyle view` on the finished run
must draw the textured mesh in a real headless Chromium (WebGL on SwiftShader).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh

sys.path.insert(0, str(Path(__file__).parent))
from browser import HeadlessBrowser, canvas_box, find_browser  # noqa: E402

ITERS, EVERY = 5, 2


def start(*args: str) -> subprocess.Popen:
    env = dict(os.environ, MESHSTYLE_QUIET="1")
    return subprocess.Popen([sys.executable, "-m", "meshstyle", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)


def read_url(process: subprocess.Popen, timeout: float = 120.0) -> str:
    """The viewer's URL from the first stdout line `meshstyle: viewer at URL ...`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "viewer at " in line:
            return line.split("viewer at ", 1)[1].split()[0]
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no viewer URL printed; stderr: {process.stderr.read() if process.poll() is not None else ''}")


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read()


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory):
    """A finished run made with --view (port 0: any free one) and --snapshot-every."""
    out = tmp_path_factory.mktemp("viewer") / "run"
    process = start("stylize", "demo-object", "--style", "circles", "--iters", str(ITERS),
                    "--snapshot-every", str(EVERY), "--view", "--view-port", "0",
                    "--set", "cameras.views=3", "--set", "cameras.holdout=1", "--texture-size", "256",
                    "--image-height", "80", "--set", "raster.levels=2", "--out", str(out))
    try:
        url = read_url(process)
        page_during_run = http_get(url)
        stdout, stderr = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    return {"out": out, "url": url, "page": page_during_run}


def test_stylize_view_serves_the_viewer_during_the_run(watched_run):
    assert watched_run["url"].startswith("http://127.0.0.1:")
    assert b"<html" in watched_run["page"].lower()
    # Not a browser: the run ends by itself when nobody sits at a terminal, and frees its port.
    with pytest.raises(OSError):
        http_get(watched_run["url"])


def test_snapshots_appear_at_the_right_steps(watched_run):
    folder = watched_run["out"] / "snapshots"
    steps = sorted(path.name for path in folder.iterdir())
    assert steps == [f"{step:04d}" for step in range(EVERY, ITERS + 1, EVERY)]
    for step in steps:
        files = sorted(path.name for path in (folder / step).iterdir())
        assert files == ["texture.png", "view-0.png", "view-1.png", "view-2.png"], files
    first = iio.imread(folder / steps[0] / "texture.png").astype(np.float32)
    last = iio.imread(folder / steps[-1] / "texture.png").astype(np.float32)
    final = iio.imread(watched_run["out"] / "texture.png").astype(np.float32)
    initial = iio.imread(watched_run["out"] / "initial_texture.png").astype(np.float32)
    # Each snapshot is the texture of its own step: the run moves away from the start step by step.
    assert np.abs(first - initial).mean() > 0.2
    assert np.abs(last - first).mean() > 0.2
    assert np.abs(final - last).mean() > 0.05
    view = iio.imread(folder / steps[-1] / "view-0.png")
    assert view.shape[0] == 240 and view.std() > 5


def glb_texture_mean(glb: bytes) -> np.ndarray:
    scene = trimesh.load(io.BytesIO(glb), file_type="glb", force="scene")
    mesh = next(iter(scene.geometry.values()))
    return np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"), dtype=np.float32).mean((0, 1)) / 255


def test_live_viewer_repaints_the_mesh_and_shows_cameras():
    """update_texture replaces the mesh that every browser gets (a new one too) with the new colours."""
    from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at
    from meshstyle.geometry.scene import TexturedMesh
    from meshstyle.outputs.viewer import Viewer, ViewerContent, rotation_to_wxyz

    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = vertices[faces][..., :2].astype(np.float32)
    red, blue = np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.float32)
    red[..., 0], blue[..., 2] = 1.0, 1.0
    pose = look_at(np.array([0.5, 0.5, 2.0]), np.array([0.5, 0.5, 0.0]), up=np.array([0.0, 1.0, 0.0]))
    camera = Camera(K=intrinsics_from_fov(64, 48, 60.0), cam_to_world=pose, width=64, height=48)
    viewer = Viewer(port=0)
    try:
        viewer.show(ViewerContent(mesh=TexturedMesh(vertices, faces, uv, red), original=None, cameras=(camera,)))
        nodes = viewer.server.scene._handle_from_node_name
        assert np.allclose(glb_texture_mean(nodes["/mesh/stylized"].glb_data), [1, 0, 0], atol=0.02)
        frustum = nodes["/cameras/0000"]
        assert np.allclose(frustum.position, pose[:3, 3])
        assert np.allclose(np.abs(frustum.wxyz), np.abs(rotation_to_wxyz(pose[:3, :3])))
        viewer.update_texture(blue, status="step 3 of 5")
        assert np.allclose(glb_texture_mean(nodes["/mesh/stylized"].glb_data), [0, 0, 1], atol=0.02)
        assert http_get(viewer.url)  # the page itself, served from the package
    finally:
        viewer.close()


def test_rotation_to_wxyz_round_trips():
    from scipy.spatial.transform import Rotation

    from meshstyle.outputs.viewer import rotation_to_wxyz

    for matrix in Rotation.random(50, random_state=0).as_matrix():
        w, x, y, z = rotation_to_wxyz(matrix)
        assert np.allclose(Rotation.from_quat([x, y, z, w]).as_matrix(), matrix, atol=1e-9)


def texture_palette(texture: np.ndarray, count: int = 8) -> np.ndarray:
    """The texture's main colours (k-means), in [0,1]."""
    from scipy.cluster.vq import kmeans2

    pixels = texture.reshape(-1, 3).astype(np.float64)
    pixels = pixels[np.random.default_rng(0).choice(len(pixels), size=min(4000, len(pixels)), replace=False)]
    centres, _ = kmeans2(pixels, count, seed=0, minit="++")
    return centres


def hue_histogram(pixels: np.ndarray, bins: int = 12) -> np.ndarray:
    """Normalised histogram of hue over the saturated pixels (N,3) in [0,1]."""
    high, low = pixels.max(1), pixels.min(1)
    saturated = (high - low) > 0.2
    r, g, b = pixels[saturated].T
    hue = (np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) + 360) % 360
    counts = np.histogram(hue, bins=bins, range=(0, 360))[0].astype(np.float64)
    return counts / max(1.0, counts.sum())


def drawn_pixels(image: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray) -> np.ndarray:
    """Pixels of the 3-D view (inside the canvas, not under a panel) that differ from its background."""
    view = image.astype(np.float32) / 255.0
    background = np.median(view[mask & border_mask(mask.shape)], axis=0)
    differs = np.abs(view - background).max(-1) > 0.12
    return view[mask & differs]


def border_mask(shape: tuple[int, int], width: int = 12) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[:width], mask[-width:], mask[:, :width], mask[:, -width:] = True, True, True, True
    return mask


def view_mask(browser: HeadlessBrowser, box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """True where the page shows the 3-D canvas itself (side panel, notices and gizmos excluded)."""
    step = 4
    hits = browser.evaluate(
        "(() => { let best = null, area = 0; for (const c of document.querySelectorAll('canvas')) {"
        " if (c.width * c.height > area) { best = c; area = c.width * c.height; } }"
        f" const out = []; for (let y = 0; y < {shape[0]}; y += {step}) {{ let row = '';"
        f" for (let x = 0; x < {shape[1]}; x += {step}) row += document.elementFromPoint(x + 1, y + 1) === best ? '1' : '0';"
        " out.push(row); } return out; })()")
    coarse = np.array([[c == "1" for c in row] for row in hits], dtype=bool)
    return np.kron(coarse, np.ones((step, step), dtype=bool))[:shape[0], :shape[1]]


@pytest.fixture(scope="module")
def browser_path():
    path = find_browser()
    if path is None:
        pytest.skip("no Chromium on this machine and none could be installed (scripts/setup.sh installs "
                    "the Debian package chromium): the viewer is not tested in a browser")
    return path


def test_view_draws_the_textured_mesh_in_a_real_browser(watched_run, browser_path, tmp_path):
    out = watched_run["out"]
    texture = iio.imread(out / "texture.png")[..., :3].astype(np.float32) / 255.0
    saturated = lambda c: np.mean(c.max(-1) - c.min(-1) > 0.2)  # noqa: E731
    server = start("view", str(out), "--port", "0")
    try:
        url = read_url(server)
        with HeadlessBrowser(960, 640, executable=browser_path) as browser:
            browser.goto(url)
            deadline, share, image = time.monotonic() + 240, 0.0, None
            while time.monotonic() < deadline:
                time.sleep(3)
                box = canvas_box(browser)
                if box is None:
                    continue
                image = browser.screenshot()
                mask = view_mask(browser, box, image.shape[:2])
                drawn = drawn_pixels(image, box, mask)
                share = len(drawn) / max(1, mask.sum())
                # The client draws the geometry first and the texture once its image has decoded
                # (seconds later under load): wait for the paint, not just the shape.
                if share > 0.05 and saturated(drawn) > 0.5 * saturated(texture.reshape(-1, 3)):
                    break
            assert image is not None, "the page never showed a canvas"
            iio.imwrite(tmp_path / "viewer.png", image)
            assert share > 0.05, f"mesh covers only {share:.1%} of the view ({tmp_path / 'viewer.png'})"
    finally:
        server.terminate()
        server.communicate(timeout=30)
    # A grey (untextured) mesh would have hardly any saturated pixels; the texture has many...
    assert saturated(drawn) > 0.5 * saturated(texture.reshape(-1, 3)), (saturated(drawn), saturated(texture))
    # ...drawn colours are the texture's, lit: their hues follow the texture's hue histogram...
    ours, theirs = hue_histogram(drawn), hue_histogram(texture.reshape(-1, 3))
    overlap = np.minimum(ours, theirs).sum()
    assert overlap > 0.6, (overlap, ours.round(2), theirs.round(2))
    # ...and most drawn pixels lie near one of its main colours up to lighting (a brightness scale).
    palette = texture_palette(texture)
    chroma = lambda c: c / np.maximum(1e-3, c.sum(-1, keepdims=True))  # noqa: E731
    distance = np.abs(chroma(drawn)[:, None] - chroma(palette)[None]).sum(-1).min(1)
    assert np.mean(distance < 0.12) > 0.7, np.percentile(distance, [50, 75, 90])
