"""`meshstyle view`: a local web viewer of a result, and the live view of `stylize --view`.

Built on viser, which serves its own prebuilt web client from the Python package (nothing is
fetched at run time). The scene holds the textured mesh twice (stylized and original, one shown at
a time, so toggling sends nothing), the optimisation cameras as frusta (a click moves the browser's
camera into one), and a side panel with the style image, the texture toggle, a screenshot button
and, during a run, the step and loss.

Coordinates: meshes are shown in our own frame (metres) with the scene's up axis as the viewer's
up, so camera poses from run.json (OpenCV axes, as viser's frusta use) need no conversion.
"""
from __future__ import annotations

import contextlib
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meshstyle.geometry.camera import Camera
from meshstyle.errors import InputError
from meshstyle.geometry.scene import TexturedMesh

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
SCREENSHOT_SIZE = (720, 1280)   # (height, width) asked of the browser for the screenshot button
FRUSTUM_SHARE = 0.03            # frustum depth as a share of the scene's bounding-box diagonal
MAX_FRUSTA = 200                # a scan may hold thousands of frames; the browser needs only some


@dataclass
class ViewerContent:
    """What the viewer shows; `original`, `cameras` and `style_image` may be missing."""
    mesh: TexturedMesh
    original: TexturedMesh | None = None
    cameras: tuple[Camera, ...] = ()
    style_image: np.ndarray | None = None     # (H,W,3) float32 in [0,1]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    kind: str = "object"                      # "room": start inside, looking at a wall
    title: str = "meshstyle"


def glb_bytes(mesh: TexturedMesh) -> bytes:
    """The mesh as a GLB in our own frame (no up-axis root node: the viewer sets its up instead)."""
    from meshstyle.outputs.export import _trimesh_of

    with io.BytesIO() as buffer:
        _trimesh_of(mesh).export(buffer, file_type="glb")
        return buffer.getvalue()


def rotation_to_wxyz(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a 3x3 rotation matrix (Shepperd's method, stable everywhere)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def vertical_fov(camera: Camera) -> float:
    """Vertical field of view in radians from the intrinsics."""
    return float(2.0 * np.arctan2(camera.height / 2.0, camera.K[1, 1]))


def up_name(up: tuple[float, float, float]) -> str:
    """viser takes its up direction as an axis name; the scene's up is one of the six axes."""
    axis = int(np.argmax(np.abs(up)))
    return ("+" if up[axis] >= 0 else "-") + "xyz"[axis]


class Viewer:
    """A viser server showing one result; `update_texture` repaints it while a run goes on."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 screenshot_dir: Path | None = None) -> None:
        try:
            import viser
        except ImportError:  # viser is a dependency; a broken install should still say what is missing
            raise InputError("viser", "the viewer needs the viser package (pip install viser)") from None
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir is not None else Path.cwd()
        try:
            # viser prints its own banner on stdout; ours (`announce`) is the one line scripts read.
            with contextlib.redirect_stdout(io.StringIO()):
                self.server = viser.ViserServer(host=host, port=port, verbose=False)
        except OSError as exc:
            raise InputError(f"{host}:{port}", f"cannot serve the viewer there ({exc.strerror or exc})") from None
        # The share button asks a public relay for a URL: this viewer stays on the machine.
        self.server.gui.configure_theme(show_share_button=False, control_width="small")
        self.host = host
        self._lock = threading.Lock()
        self._stylized = None
        self._original = None
        self._content: ViewerContent | None = None
        self._status = None
        self._texture_choice = None
        self._screenshots = 0

    @property
    def port(self) -> int:
        return int(self.server.get_port())

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def show(self, content: ViewerContent) -> None:
        """Put a result into the scene and build the side panel (once per viewer)."""
        self._content = content
        scene, gui = self.server.scene, self.server.gui
        scene.set_up_direction(up_name(content.up))
        self._stylized = scene.add_glb("/mesh/stylized", glb_bytes(content.mesh))
        if content.original is not None:
            self._original = scene.add_glb("/mesh/original", glb_bytes(content.original), visible=False)
        self._add_frusta(content)
        self._place_initial_camera(content)

        gui.add_markdown(f"**{content.title}**")
        self._status = gui.add_markdown("")
        choices = ("stylized", "original") if content.original is not None else ("stylized",)
        self._texture_choice = gui.add_dropdown("Texture", choices, initial_value="stylized")
        self._texture_choice.on_update(lambda _event: self._apply_texture_choice())
        if content.cameras:
            reset = gui.add_button("Overview")
            reset.on_click(lambda event: self._overview(event.client))
        shot = gui.add_button("Save screenshot")
        shot.on_click(lambda event: self._screenshot(event.client))
        if content.style_image is not None:
            from meshstyle.common.io import to_uint8

            gui.add_image(to_uint8(content.style_image), label="Style", format="jpeg")

    def update_texture(self, texture: np.ndarray, status: str = "") -> None:
        """Repaint the stylized mesh with a new texture (H,W,3) float32; safe from any thread."""
        if self._content is None:
            raise RuntimeError("show() first")
        mesh = self._content.mesh
        self._content.mesh = TexturedMesh(mesh.vertices, mesh.faces, mesh.uv, texture)
        data = glb_bytes(self._content.mesh)
        with self._lock:
            # Re-adding a node under the same name replaces it in every connected browser.
            visible = self._texture_choice is None or self._texture_choice.value == "stylized"
            self._stylized = self.server.scene.add_glb("/mesh/stylized", data, visible=visible)
        if status:
            self.set_status(status)

    def set_status(self, text: str) -> None:
        if self._status is not None:
            self._status.content = text

    def close(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            self.server.stop()

    def wait(self) -> None:
        """Serve until Ctrl-C."""
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass

    # --- internals ---------------------------------------------------------------------------

    def _apply_texture_choice(self) -> None:
        with self._lock:
            original = self._texture_choice.value == "original" and self._original is not None
            if self._stylized is not None:
                self._stylized.visible = not original
            if self._original is not None:
                self._original.visible = original

    def _add_frusta(self, content: ViewerContent) -> None:
        if not content.cameras:
            return
        depth = FRUSTUM_SHARE * _diagonal(content.mesh)
        step = max(1, len(content.cameras) // MAX_FRUSTA)
        for index, camera in list(enumerate(content.cameras))[::step]:
            frustum = self.server.scene.add_camera_frustum(
                f"/cameras/{index:04d}", fov=vertical_fov(camera), aspect=camera.width / camera.height,
                scale=depth, thickness=0.04 * depth, color=(40, 40, 40),
                wxyz=rotation_to_wxyz(camera.cam_to_world[:3, :3]), position=camera.center)
            frustum.on_click(lambda event, camera=camera: self._look_through(event.client, camera))

    def _look_through(self, client, camera: Camera) -> None:
        """Move the browser's camera to an optimisation camera (the clicked frustum)."""
        if client is None:
            return
        forward = camera.cam_to_world[:3, 2]
        with client.atomic():
            client.camera.fov = vertical_fov(camera)
            client.camera.wxyz = rotation_to_wxyz(camera.cam_to_world[:3, :3])
            client.camera.position = camera.center
            client.camera.look_at = camera.center + forward * 0.5 * _diagonal(self._content.mesh)

    def _overview(self, client) -> None:
        if client is None or self._content is None:
            return
        position, target = _overview_pose(self._content)
        with client.atomic():
            client.camera.position = position
            client.camera.look_at = target

    def _place_initial_camera(self, content: ViewerContent) -> None:
        position, target = _overview_pose(content)
        self.server.initial_camera.position = tuple(float(x) for x in position)
        self.server.initial_camera.look_at = tuple(float(x) for x in target)

    def _screenshot(self, client) -> None:
        """Ask the browser that pressed the button for a render of its current view and save it."""
        from meshstyle.common.io import write_image
        from meshstyle.common.progress import log

        if client is None:
            return
        height, width = SCREENSHOT_SIZE
        try:
            image = client.get_render(height=height, width=width, transport_format="png", timeout=30.0)
        except (TimeoutError, RuntimeError) as exc:
            client.add_notification(title="Screenshot failed", body=str(exc), auto_close_seconds=5.0)
            return
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        if pixels.shape[-1] == 4:   # transparent background over white, as the page shows it
            pixels = pixels[..., :3] * pixels[..., 3:] + (1.0 - pixels[..., 3:])
        self._screenshots += 1
        path = self.screenshot_dir / f"screenshot-{time.strftime('%Y%m%d-%H%M%S')}-{self._screenshots:02d}.png"
        write_image(path, pixels)
        log(f"screenshot saved to {path}")
        client.add_notification(title="Screenshot saved", body=str(path), auto_close_seconds=5.0)


def _diagonal(mesh: TexturedMesh) -> float:
    vertices = np.asarray(mesh.vertices)
    return float(np.linalg.norm(vertices.max(0) - vertices.min(0))) or 1.0


def _overview_pose(content: ViewerContent) -> tuple[np.ndarray, np.ndarray]:
    """Where the browser's camera starts: inside a room high in a corner, looking across it;
    around an object, up and back from the bounding box."""
    vertices = np.asarray(content.mesh.vertices)
    low, high = vertices.min(0), vertices.max(0)
    centre, diagonal = (low + high) / 2.0, _diagonal(content.mesh)
    up = np.asarray(content.up, dtype=np.float64)
    if content.kind == "room":
        # From high in one corner towards the far floor corner: most walls, the floor and the
        # furniture in one view, and the frusta spread out in front rather than around the eye.
        horizontal = np.abs(up) < 0.5
        eye = centre + np.where(horizontal, -0.38 * (high - low), 0.0) + up * 0.32 * float((high - low) @ np.abs(up))
        target = centre + np.where(horizontal, 0.2 * (high - low), 0.0) - up * 0.25 * float((high - low) @ np.abs(up))
        return eye, target
    side = np.array([1.0, -1.0, 0.0]) if abs(up[2]) > 0.5 else np.array([1.0, 0.0, 1.0])
    side -= up * (side @ up)
    side /= np.linalg.norm(side)
    return centre + 0.9 * diagonal * side + 0.45 * diagonal * up, centre


def content_of(loaded) -> ViewerContent:
    """ViewerContent of a `result.LoadedResult` (a run folder or a bare textured file)."""
    title = Path(loaded.folder).name if loaded.folder is not None else loaded.scene.name
    inputs = loaded.run.inputs if loaded.run is not None else {}
    return ViewerContent(mesh=loaded.mesh, original=loaded.original, cameras=tuple(loaded.cameras),
                         style_image=loaded.style_image, up=tuple(loaded.scene.up), kind=loaded.scene.kind,
                         title=inputs.get("scene_name", title))
