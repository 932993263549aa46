"""A long flat wall photographed head-on from several distances: the scene of the stroke-size
acceptance test (tests/test_stroke_size.py) and of its measurements by hand."""
from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from meshstyle.geometry.camera import Camera, intrinsics_from_fov, look_at
from meshstyle.geometry.scene import Appearance, Photo, Scene

WALL_LENGTH, WALL_HEIGHT = 7.0, 3.2
EYE_HEIGHT = 1.6
FOV_DEG = 60.0
# (distance from the wall in m, camera positions along it): the near, middle and far bands are
# one pyramid level (x1.5) apart, so a run needs all three levels to keep its strokes' world size.
SHOTS = ((1.0, (0.8, 2.2, 4.8, 6.2)), (1.5, (1.3, 5.7)), (2.25, (3.5,)))


def wall_scene(folder: Path, height: int = 96) -> Scene:
    """The wall (y = 0, facing -y, grey with faint noise so its frames pass the blur check) with
    one photo per shot in SHOTS; the photos only carry the cameras (content target: the mesh)."""
    cols, rows = 70, 32
    xs, zs = np.meshgrid(np.linspace(0, WALL_LENGTH, cols + 1), np.linspace(0, WALL_HEIGHT, rows + 1))
    vertices = np.stack([xs.ravel(), np.zeros(xs.size), zs.ravel()], axis=1)
    index = np.arange(xs.size).reshape(xs.shape)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    # Winding so that the normals face -y, towards the cameras.
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    grey = np.full((len(vertices), 3), 0.6, dtype=np.float32)
    width = int(round(height * 4 / 3))
    K = intrinsics_from_fov(width, height, FOV_DEG)
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for distance, positions in SHOTS:
        for x in positions:
            eye = np.array([x, -distance, EYE_HEIGHT])
            camera = Camera(K=K, cam_to_world=look_at(eye, eye + [0.0, 1.0, 0.0]), width=width, height=height)
            path = folder / f"frame_{distance:.2f}_{x:.1f}.png"
            iio.imwrite(path, (rng.uniform(0.4, 0.8, (height, width, 3)) * 255).astype(np.uint8))
            photos.append(Photo(camera=camera, color_path=path, name=path.stem))
    return Scene(name="wall", vertices=vertices, faces=faces.astype(np.int64),
                 appearance=Appearance(vertex_colors=grey), photos=photos, kind="room", source=str(folder))
