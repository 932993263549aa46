"""Choosing a scan's frames: a few sharp photos that together see most of the surface."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from meshstyle.common.progress import progress
from meshstyle.geometry.mesh import face_areas
from meshstyle.geometry.scene import Photo


@dataclass
class FrameReport:
    """How `select_frames` chose: what it dropped and how much of the surface the choice sees."""
    candidates: int = 0            # frames considered (at most max_candidates, drawn at random)
    dropped_blurry: int = 0
    dropped_unreadable: int = 0    # pixels that cannot be decoded
    dropped_empty: int = 0         # seeing no mesh
    chosen: int = 0
    coverage: float = 0.0          # share of the mesh's area seen by the chosen frames
    coverage_all: float = 0.0      # seen by all candidates: the most any choice could reach
    coverage_curve: list[float] = field(default_factory=list)   # coverage after each pick
    patch_size_m: float = 0.0      # side of the surface patches coverage is counted in
    seconds: float = 0.0


def select_frames(photos: list[Photo], rasterizer, n: int, rng: np.random.Generator,
                  blur_filter: bool = True, *, raster_height: int = 64, blur_ratio: float = 0.3,
                  max_candidates: int = 2000) -> tuple[list[Photo], FrameReport]:
    """At most `n` sharp photos that together see as much of the mesh's surface as possible.

    1. Blur filter: frames whose sharpness (variance of the Laplacian of a ~240-px grey thumbnail)
       is below `blur_ratio` x the median are dropped; so are frames whose pixels cannot be decoded.
    2. Coverage: each candidate is rasterized `raster_height` pixels high. Faces are grouped into
       surface patches (voxel cells of face centroids, about 2x2 pixels of such a view), because at
       that size a view hits only a sample of the faces of a dense scan; a view sees the patches its
       pixels hit. Greedily pick the view adding the most unseen patch area, until `n` views or
       nothing new.

    The chosen photos come most informative first, so any prefix is itself a good selection.
    `rng` draws the candidates when there are more than `max_candidates`.
    """
    start = time.perf_counter()
    candidates = list(photos)
    if len(candidates) > max_candidates:
        keep = np.sort(rng.choice(len(candidates), size=max_candidates, replace=False))
        candidates = [candidates[i] for i in keep]
    report = FrameReport(candidates=len(candidates))

    sharpness = [image_sharpness(photo.color_path) for photo in progress(candidates, desc="blur check", unit="frame")]
    readable = [(photo, value) for photo, value in zip(candidates, sharpness) if value is not None]
    report.dropped_unreadable = len(candidates) - len(readable)
    if blur_filter and readable:
        threshold = blur_ratio * float(np.median([value for _, value in readable]))
        sharp = [photo for photo, value in readable if value >= threshold]
        report.dropped_blurry = len(readable) - len(sharp)
    else:
        sharp = [photo for photo, _ in readable]

    seen_faces, pixel_sizes, seeing = _visible_faces(sharp, rasterizer, raster_height)
    report.dropped_empty = len(sharp) - len(seeing)
    face_area = face_areas(rasterizer.vertices, rasterizer.faces)
    total_area = float(face_area.sum())
    chosen: list[Photo] = []
    curve: list[float] = []
    patch_size = 0.0
    if seeing:
        # Patches of about 2x2 pixels at the views' typical distance: small enough to tell views
        # apart, big enough that a patch a view looks at is hit by at least one of its pixels.
        patch_size = 2.0 * float(np.median(pixel_sizes))
        patch_of_face, patch_area = surface_patches(rasterizer.vertices, rasterizer.faces, face_area, patch_size)
        views = _view_patch_matrix([patch_of_face[faces] for faces in seen_faces], len(patch_area))
        order, areas = greedy_cover(views, patch_area, n)
        chosen = [seeing[i] for i in order]
        curve = [area / total_area for area in areas]
        all_seen = np.unique(views.indices)
        report.coverage_all = float(patch_area[all_seen].sum() / total_area)
    report.chosen = len(chosen)
    report.coverage = curve[-1] if curve else 0.0
    report.coverage_curve = curve
    report.patch_size_m = patch_size
    report.seconds = time.perf_counter() - start
    return chosen, report


def image_sharpness(path: Path, height: int = 240) -> float | None:
    """Variance of the Laplacian of a grey thumbnail about `height` pixels high; None if unreadable.

    JPEGs are decoded straight at 1/2, 1/4 or 1/8 scale (`draft`), so thousands of frames take
    seconds. Every frame of a scan is reduced to the same height, so values compare across frames.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            height = min(height, image.height)   # upsampling would only blur every frame alike
            width = max(1, round(image.width * height / image.height))
            image.draft("L", (width, height))
            grey = image.convert("L")
            if grey.size != (width, height):
                grey = grey.resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(grey, dtype=np.float32)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):  # PIL's ways of saying "corrupt"
        return None
    laplacian = (pixels[1:-1, :-2] + pixels[1:-1, 2:] + pixels[:-2, 1:-1] + pixels[2:, 1:-1]
                 - 4.0 * pixels[1:-1, 1:-1])
    return float(laplacian.var())


def _visible_faces(photos: list[Photo], rasterizer, raster_height: int,
                   batch: int = 32) -> tuple[list[np.ndarray], list[float], list[Photo]]:
    """Per photo seeing the mesh: its visible face ids, and its median pixel size in metres."""
    seen_faces, pixel_sizes, seeing = [], [], []
    bar = progress(desc="frame coverage", total=len(photos), unit="frame")
    for first in range(0, len(photos), batch):
        group = photos[first:first + batch]
        cameras = [photo.camera.scaled(raster_height) for photo in group]
        for photo, camera, fragments in zip(group, cameras, rasterizer.render_many(cameras)):
            mask = fragments.mask.numpy()
            if mask.any():
                seen_faces.append(np.unique(fragments.face_id.numpy()[mask]))
                # A pixel at z-depth d spans d / f metres on a surface facing the camera.
                pixel_sizes.append(float(np.median(fragments.depth.numpy()[mask])) / camera.K[1, 1])
                seeing.append(photo)
        bar.update(len(group))
    bar.close()
    return seen_faces, pixel_sizes, seeing


def surface_patches(vertices: np.ndarray, faces: np.ndarray, face_area: np.ndarray,
                    size: float) -> tuple[np.ndarray, np.ndarray]:
    """(patch id per face, area per patch): faces grouped by the `size`-metre voxel of their centroid."""
    centroids = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)].mean(axis=1)
    cells = np.floor((centroids - centroids.min(axis=0)) / max(size, 1e-9)).astype(np.int64)
    extent = cells.max(axis=0) + 1
    cell_key = (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]
    _, patch_of_face = np.unique(cell_key, return_inverse=True)
    return patch_of_face, np.bincount(patch_of_face, weights=face_area)


def _view_patch_matrix(view_patches: list[np.ndarray], patch_count: int):
    """Sparse (views x patches) 0/1 matrix: which patches each view sees."""
    from scipy.sparse import csr_matrix

    columns = [np.unique(patches) for patches in view_patches]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in columns])])
    indices = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
    return csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(columns), patch_count))


def greedy_cover(views, patch_area: np.ndarray, n: int) -> tuple[list[int], list[float]]:
    """Greedy maximum coverage: view indices in pick order and the area covered after each pick."""
    unseen = patch_area.astype(np.float64).copy()
    order: list[int] = []
    covered: list[float] = []
    total = 0.0
    for _ in range(min(n, views.shape[0])):
        gains = views @ unseen
        best = int(np.argmax(gains))
        if gains[best] <= 0.0:
            break   # every remaining view only sees what is already covered
        order.append(best)
        total += float(gains[best])
        covered.append(total)
        unseen[views.indices[views.indptr[best]:views.indptr[best + 1]]] = 0.0
    return order, covered
