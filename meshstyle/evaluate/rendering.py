"""The views every metric looks at: the mesh's texture rendered through rasterized fragments."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meshstyle.common.progress import progress
from meshstyle.geometry.camera import Camera
from meshstyle.geometry.scene import TexturedMesh
from meshstyle.outputs.render import render_fragments
from meshstyle.raster.fragments import Fragments
from meshstyle.raster.rasterizer import Rasterizer


@dataclass
class RenderedView:
    """One camera's fragments and the mesh's texture seen through them."""
    camera: Camera
    fragments: Fragments
    image: np.ndarray          # (H,W,3) float32 in [0,1]; white where fragments.mask is False


def rendered_views(mesh: TexturedMesh, cameras: list[Camera]) -> list[RenderedView]:
    """The mesh seen from each camera, with the fragments the image came from."""
    return Renderer(mesh).render(cameras, mesh.texture, desc="render views")


class Renderer:
    """Rasterizes one geometry; a renderer for a second texture on the same geometry reuses it."""

    def __init__(self, mesh: TexturedMesh, reuse: "Renderer | None" = None):
        self.mesh = mesh
        same_geometry = reuse is not None and (reuse.mesh is mesh or _same_geometry(reuse.mesh, mesh))
        self._fragments: dict[int, tuple[Camera, Fragments]] = reuse._fragments if same_geometry else {}
        self.rasterizer = reuse.rasterizer if same_geometry else Rasterizer(
            mesh.vertices, mesh.faces, mesh.uv)

    def fragments(self, cameras: list[Camera]) -> list[Fragments]:
        """Each camera's fragments, rasterized once (the cameras missing so far in one cast)."""
        # Cameras (frozen, holding arrays) are not hashable: key by identity, keep them alive.
        missing = list({id(camera): camera for camera in cameras if id(camera) not in self._fragments}.values())
        for camera, fragments in zip(missing, self.rasterizer.render_many(missing)):
            self._fragments[id(camera)] = (camera, fragments)
        return [self._fragments[id(camera)][1] for camera in cameras]

    def render(self, cameras: list[Camera], texture: np.ndarray, *, desc: str) -> list[RenderedView]:
        texture_chw = torch.from_numpy(np.ascontiguousarray(texture, dtype=np.float32)).permute(2, 0, 1)
        views = []
        for camera, fragments in progress(zip(cameras, self.fragments(cameras)), desc=desc, unit="view",
                                          total=len(cameras)):
            with torch.no_grad():
                image = render_fragments(texture_chw, fragments).permute(1, 2, 0).clamp(0, 1)
            views.append(RenderedView(camera=camera, fragments=fragments, image=image.numpy()))
        return views


def _same_geometry(a: TexturedMesh, b: TexturedMesh) -> bool:
    return (a.vertices.shape == b.vertices.shape and a.faces.shape == b.faces.shape
            and np.array_equal(a.faces, b.faces) and np.allclose(a.vertices, b.vertices)
            and np.allclose(a.uv, b.uv))


def back_project(camera: Camera, rows: np.ndarray, cols: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points of pixels (row, col) at z-depth `depth`, and their camera-space rays (z = 1)."""
    rays = np.linalg.solve(camera.K, np.stack([cols, rows, np.ones_like(cols)]).astype(np.float64)).T
    points_cam = rays * depth[:, None]
    rotation, origin = camera.cam_to_world[:3, :3], camera.cam_to_world[:3, 3]
    return points_cam @ rotation.T + origin, rays
