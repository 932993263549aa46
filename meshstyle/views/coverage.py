"""Every used texel painted: which texels the optimisation views see, views chosen to see many of
them, and paint carried over the surface to the texels no view sees.

The optimiser only repaints what its views look at; everything else would keep the mesh's own
colours and show as unpainted patches from other viewpoints. Two remedies:
- `select_for_coverage`: among candidate views, greedily keep those that see the most atlas texels
  not yet seen (texels, not image pixels: a far wall fills few pixels but many texels).
- `propagate_paint`: after optimising, every used texel that no view saw takes the paint of a seen
  texel found by mirroring it across the nearest seen surface point (p -> 2q - p, then the nearest
  seen texel there). Mirroring continues the strokes near the border of the seen region instead of
  smearing its border colours outwards, as copying the nearest texel would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.spatial import cKDTree

from meshstyle.geometry.camera import Camera
from meshstyle.raster.fragments import Fragments

DEPTH_TOLERANCE = 0.02        # a texel is visible where the view's surface lies within 2% of its depth
SELECTION_HEIGHT = 64         # image height at which candidate views are judged for coverage
SELECTION_ATLAS_SIDE = 256    # texel grid on which candidate views are judged (samples of the atlas)


@dataclass
class TexelPoints:
    """The used texels of an atlas placed on the surface."""
    size: int
    index: np.ndarray         # (T,) flat texel index row * size + col
    face: np.ndarray          # (T,) face each texel centre lies in
    point: np.ndarray         # (T,3) float64 surface point at the texel centre


def texel_points(vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, size: int) -> TexelPoints:
    from meshstyle.atlas.unwrap import rasterize_atlas

    face_id, bary = rasterize_atlas(uv, size)
    used = face_id >= 0
    face = face_id[used]
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)[face]]
    point = np.einsum("tk,tkd->td", bary[used].astype(np.float64), corners)
    return TexelPoints(size=size, index=np.flatnonzero(used.ravel()), face=face, point=point)


def visible_points(points: np.ndarray, faces: np.ndarray, camera: Camera, fragments: Fragments,
                   depth_tolerance: float = DEPTH_TOLERANCE) -> np.ndarray:
    """Which surface points (on `faces`) the view sees: in the image and not behind what its pixel
    shows. `camera` must match the fragments' image size."""
    world_to_cam = np.linalg.inv(camera.cam_to_world)
    points_cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = points_cam[:, 2]
    in_front = z > 1e-6
    pixels = points_cam @ camera.K.T
    safe_z = np.where(in_front, z, 1.0)
    cols = np.round(pixels[:, 0] / safe_z).astype(np.int64)
    rows = np.round(pixels[:, 1] / safe_z).astype(np.int64)
    inside = in_front & (cols >= 0) & (cols < fragments.width) & (rows >= 0) & (rows < fragments.height)
    rows, cols, z = rows[inside], cols[inside], z[inside]
    pixel_face = fragments.face_id.numpy()[rows, cols]
    pixel_depth = fragments.depth.numpy()[rows, cols]
    # Its own face, or something at its depth (a neighbouring face of the same surface); at grazing
    # angles the depth changes fast across a pixel and the face test carries it.
    same_surface = (pixel_face == faces[inside]) | (np.abs(pixel_depth - z) <= depth_tolerance * z)
    visible = np.zeros(len(points), dtype=bool)
    visible[inside] = fragments.mask.numpy()[rows, cols] & same_surface
    return visible


def seen_mask(texels: TexelPoints, cameras: Sequence[Camera], fragments: Sequence[Fragments]) -> np.ndarray:
    """(T,) which used texels at least one of the views sees (cameras sized like their fragments)."""
    seen = np.zeros(len(texels.point), dtype=bool)
    for camera, view in zip(cameras, fragments):
        todo = ~seen
        seen[todo] = visible_points(texels.point[todo], texels.face[todo], camera, view)
    return seen


def select_for_coverage(candidates: Sequence[Camera], count: int, rasterizer, uv: np.ndarray,
                        ) -> tuple[list[int], float]:
    """Indices of `count` candidates picked greedily for the most newly seen atlas texels (judged at
    SELECTION_HEIGHT pixels on a SELECTION_ATLAS_SIDE texel grid), in pick order, and the share of
    used texels the picks see. Once nothing new is seen, the rest follow in candidate order."""
    if count >= len(candidates):
        return list(range(len(candidates))), float("nan")
    texels = texel_points(rasterizer.vertices, rasterizer.faces, uv, SELECTION_ATLAS_SIDE)
    small = [camera.scaled(min(SELECTION_HEIGHT, camera.height)) for camera in candidates]
    sees = [visible_points(texels.point, texels.face, camera, view)
            for camera, view in zip(small, rasterizer.render_many(small))]
    seen = np.zeros(len(texels.point), dtype=bool)
    chosen: list[int] = []
    for _ in range(count):
        gains = [-1 if index in chosen else int((sees[index] & ~seen).sum()) for index in range(len(sees))]
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        chosen.append(best)
        seen |= sees[best]
    chosen += [index for index in range(len(candidates)) if index not in chosen][:count - len(chosen)]
    return chosen, float(seen.mean()) if len(seen) else float("nan")


def propagate_paint(texture: np.ndarray, texels: TexelPoints, seen: np.ndarray) -> np.ndarray:
    """(H,W,C) texture whose unseen used texels carry paint mirrored from the seen surface.

    For an unseen texel at p: q = nearest seen texel, r = 2q - p (p mirrored across the border of
    the seen region), paint = the seen texel nearest to r. With nothing seen, the texture is returned
    unchanged (there is no paint to carry)."""
    result = np.array(texture, dtype=np.float32)
    unseen = ~seen
    if not unseen.any() or not seen.any():
        return result
    flat = result.reshape(-1, result.shape[-1])
    seen_points = texels.point[seen]
    tree = cKDTree(seen_points)
    targets = texels.point[unseen]
    _, nearest = tree.query(targets, workers=1)
    mirrored = 2.0 * seen_points[nearest] - targets
    _, source = tree.query(mirrored, workers=1)
    flat[texels.index[unseen]] = flat[texels.index[seen][source]]
    return result


def painted_share(after: np.ndarray, before: np.ndarray, seen: np.ndarray, threshold: float) -> float:
    """Share of used texels that a view sees or whose colour left the original's: (T,C) colours of
    the used texels after and before stylizing, changed when their mean absolute difference over
    channels exceeds `threshold`. The rest kept the mesh's own colours: unpainted."""
    if len(seen) == 0:
        return float("nan")
    changed = np.abs(np.asarray(after, np.float32) - np.asarray(before, np.float32)).mean(axis=1) > threshold
    return float((seen | changed).mean())
