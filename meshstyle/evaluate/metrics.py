"""Evaluation of a stylized mesh: circles, style, content, seams and coverage.

`evaluate(mesh, ...)` renders the mesh along cameras and returns nested figures,
`{"circles": {"radius_median_m": ...}, "style": {"skipped": "no style image"}, ...}`;
`flatten_metrics` turns them into the `circles.radius_median_m` keys that `meshstyle eval --json`
prints, and `format_table` into the table that `meshstyle eval` prints. A metric that lacks its
inputs is skipped with a reason instead of failing the others.

Views: every metric except coverage runs on the held-out views when there are any (views the
optimiser never trained on), else on the optimisation views; `views` in each section says how many.
Style and content see the views at the cameras' own size, the scale the optimiser saw; the
geometric measures (circles, seams) see them enlarged to at least `geometry_height` = 480 pixels
high, field of view kept, since training views are often too small for discs to span enough
pixels or for seams to be crossed often, and so that runs trained at different sizes compare.
Renders are `render.render_fragments`: the texture looked up through the rasterized UVs with mip
filtering, no shading, white off the mesh.

## circles
StyleMesh's measure of whether strokes keep one size across depth and viewing angle. Stylize with
the built-in `circles` style (red discs of one radius on white), then in each view:
1. red pixels are those with `r - max(g, b) > 0.5` (halfway between red and white, so a blurred
   disc edge is cut where the disc ends); connected components (scipy.ndimage) are the blobs;
2. blobs that touch the image border, a pixel off the mesh, or a different surface (a ring pixel
   off the blob's plane: occlusion, a corner) are dropped, as are blobs whose normals bend
   (a crease), blobs of fewer than `min_pixels`, and blobs that are not an ellipse in the image
   (IoU with their moment ellipse < 0.8: two touching discs); with the original texture given,
   blobs that were mostly red before stylization (a red rug) are dropped too;
3. each blob's pixels are back-projected to 3-D with the rendered depth and laid into the blob's
   surface plane; every pixel is weighted by the surface area it covers,
   `depth**2 * cos(off-axis angle) / (fx * fy * cos(view angle))`, so the blob's second moments
   are those of the painted shape on the surface, free of perspective. For an ellipse with
   semi-axes a >= b the moments are a**2/4 and b**2/4; `stretch` is a/b and the radius is
   `sqrt(area / pi)` (the radius of a disc of the same area).
Figures: `radius_median_m` (metres on the surface), `radius_spread` (median absolute deviation /
median: 0 when every stroke has one size), `stretch_median` (1 = round), `radius_depth_corr`
(Spearman correlation of radius with depth: near 0 when strokes do not grow with distance),
`stretch_angle_corr` (Spearman correlation of stretch with viewing angle), `count` (blobs measured).
Correlations are NaN with fewer than 3 blobs. Skipped when the style image has no red discs.

## style
Sliced Wasserstein distance between the VGG-19 features (relu1_1, relu2_1, relu3_1, relu4_1) of
the style image and of each rendered view: the whole distribution of features, a statistic the
optimiser (Gram matrices or AdaIN means and deviations) does not train on. Features are projected on
64 random unit directions (fixed seed), the sorted projections compared at 256 quantiles, and each
layer's distance divided by the spread of the style's projections so that layers weigh alike.
Only feature cells entirely on the mesh count. Figures: `swd` (mean over layers and views, lower is
closer to the style) and `swd_relu1_1` ... per layer. The style image is resized to a long side of
`style_size` pixels (384, as the optimiser's style targets).

## content
How much of the mesh's own appearance survives: each view rendered with the stylized texture
against the same view rendered with the initial texture (`original`). Figures: `feature_distance`
(relu4_2 features, squared difference over squared target norm, on cells entirely on the mesh;
0 = same content) and `ssim` (structural similarity of the images, Gaussian window sigma 1.5, on
covered pixels; 1 = identical). Skipped without the original texture.

## seams
Whether UV seams show. Two neighbouring pixels (4-neighbours) that see different faces sharing a
3-D edge straddle that edge; the edge is a UV seam when its two faces give its corners different
UVs, else an interior edge. Vertices are welded by position first, so a mesh whose exporter split
vertices at seams is judged the same. Figures: `seam_diff` and `interior_diff` (mean absolute colour
difference across such pixel pairs, colours in [0,1]), `ratio` (seam / interior: about 1 when
seams do not show), `seam_pairs`, `interior_pairs`, and with the original texture given
`original_ratio`, the same ratio of the mesh's own colours: charts usually end at creases, where
a room's colours change anyway (wall to floor), so compare `ratio` with it rather than with 1.
Skipped when no seam is in view.

## coverage
Share of the atlas the optimisation views reach. Every texel of a used chart (`atlas.rasterize_atlas`
at the texture's size, at most 1024) is placed on the surface and projected into each optimisation
view; it is seen when it lands in the image and the view's fragment there is its own face or lies
at its depth (within 2%), i.e. nothing occludes it. Figures: `seen_share`, `unseen_share`,
`unseen_texels` (counted at `atlas_size`), `used_texels`, `atlas_size`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage, stats

from meshstyle.views.cameras import Camera
from meshstyle.raster.fragments import Fragments
from meshstyle.common.progress import progress
from meshstyle.geometry.scene import TexturedMesh
from meshstyle.inputs.styles import resize_long_side

METRICS = ("circles", "style", "content", "seams", "coverage")

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_2"
REDNESS_THRESHOLD = 0.5      # r - max(g, b): halfway between pure red (1) and white (0)
MAX_COVERAGE_SIZE = 1024


@dataclass
class RenderedView:
    """One camera's fragments and the mesh's texture seen through them."""
    camera: Camera
    fragments: Fragments
    image: np.ndarray          # (H,W,3) float32 in [0,1]; white where fragments.mask is False


@dataclass
class Circle:
    """One red blob measured on the surface it is painted on."""
    radius_m: float            # radius of the disc with the blob's surface area
    stretch: float             # major / minor axis of its surface ellipse
    depth_m: float             # mean z-depth of its pixels
    angle_deg: float           # viewing angle at its centre (0 = facing the camera)


def evaluate(mesh: TexturedMesh, *, original: TexturedMesh | None = None, cameras: list[Camera],
             holdout: list[Camera] | None = None, style_image: np.ndarray | None = None,
             metrics: Sequence[str] | None = None, style_size: int = 384, geometry_height: int = 480,
             seed: int = 0) -> dict[str, dict[str, float]]:
    """Figures of `mesh` for each metric of `metrics` (default: all of METRICS), see the module doc.

    `cameras` are the optimisation views, `holdout` views never trained on; `original` carries the
    initial texture on the same geometry and atlas; `style_image` is (H,W,3) float in [0,1].
    Circles and seams are measured on the views enlarged to at least `geometry_height` pixels
    (field of view kept); style and content use the cameras as given, the scale the optimiser saw.
    """
    from meshstyle.errors import InputError

    wanted = tuple(METRICS if metrics is None else metrics)
    for name in wanted:
        if name not in METRICS:
            raise InputError("--metric", f"unknown metric '{name}' (choose from {', '.join(METRICS)})")

    eval_cameras = list(holdout) if holdout else list(cameras)
    renderer = _Renderer(mesh)
    geometry_cameras = [camera if camera.height >= geometry_height else camera.scaled(geometry_height)
                        for camera in eval_cameras]
    rendered: dict[str, list[RenderedView]] = {}

    # Each kind of render, by (textured mesh, cameras), made once on first use; the original
    # texture lies on the same geometry, so every render shares the first one's fragments.
    sources = {"eval views": (mesh, eval_cameras), "geometry views": (mesh, geometry_cameras),
               "content targets": (original, eval_cameras), "geometry originals": (original, geometry_cameras)}

    def views(kind: str = "eval views") -> list[RenderedView]:
        if kind not in rendered:
            textured, kind_cameras = sources[kind]
            rendered[kind] = _Renderer(textured, reuse=renderer).render(kind_cameras, textured.texture, desc=kind)
        return rendered[kind]

    # One VGG pass per view serves both feature metrics.
    features = _FeatureCache((STYLE_LAYERS if "style" in wanted else ())
                             + ((CONTENT_LAYER,) if "content" in wanted else ()))
    results: dict[str, dict[str, float]] = {}
    for name in wanted:
        missing = _missing_input(name, cameras=cameras, eval_cameras=eval_cameras, original=original,
                                 style_image=style_image)
        if missing:
            results[name] = {"skipped": missing}
        elif name == "circles":
            results[name] = circle_metrics(views("geometry views"),
                                           views("geometry originals") if original is not None else None)
        elif name == "style":
            results[name] = style_metrics(views(), style_image, style_size=style_size, seed=seed,
                                          features=features)
        elif name == "content":
            results[name] = content_metrics(views(), views("content targets"), features=features)
        elif name == "seams":
            results[name] = seam_metrics(views("geometry views"), mesh,
                                         views("geometry originals") if original is not None else None)
        elif name == "coverage":
            results[name] = coverage_metrics(list(cameras), renderer.fragments(list(cameras)), mesh)
    return results


def _missing_input(metric: str, *, cameras: list[Camera], eval_cameras: list[Camera],
                   original: TexturedMesh | None, style_image: np.ndarray | None) -> str | None:
    """Why `metric` cannot run on these inputs, or None when it can."""
    if metric == "coverage":
        return None if cameras else "no optimisation cameras"
    if not eval_cameras:
        return "no cameras"
    if metric == "circles" and style_image is not None and not _has_red_discs(style_image):
        return "style is not the circles style (no red discs)"
    if metric == "style" and style_image is None:
        return "no style image"
    if metric == "content" and original is None:
        return "no original texture"
    return None


def flatten_metrics(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """`{"circles": {"count": 12.0}}` -> `{"circles.count": 12.0}`; skip reasons are left out."""
    flat: dict[str, float] = {}
    for metric, figures in results.items():
        for key, value in figures.items():
            if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
                flat[f"{metric}.{key}"] = float(value)
    return flat


def format_table(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table, one figure per line, grouped by metric."""
    rows = []
    for metric, figures in results.items():
        if "skipped" in figures:
            rows.append((metric, "skipped", str(figures["skipped"])))
            continue
        for key, value in figures.items():
            rows.append((metric, key, _format_value(value)))
    if not rows:
        return "(no metrics)"
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = []
    previous = None
    for metric, key, value in rows:
        label = metric if metric != previous else ""
        lines.append(f"{label:<{widths[0]}}  {key:<{widths[1]}}  {value}")
        previous = metric
    return "\n".join(lines)


def _format_value(value: float) -> str:
    if isinstance(value, str):
        return value
    value = float(value)
    if np.isnan(value):
        return "nan"
    if value.is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


# ---------------------------------------------------------------------------------------------
# Rendering: fragments once per camera, then any texture through them.

def rendered_views(mesh: TexturedMesh, cameras: list[Camera]) -> list[RenderedView]:
    """The mesh seen from each camera, with the fragments the image came from."""
    return _Renderer(mesh).render(cameras, mesh.texture, desc="render views")


class _Renderer:
    """Rasterizes one geometry; a renderer for a second texture on the same geometry reuses it."""

    def __init__(self, mesh: TexturedMesh, reuse: "_Renderer | None" = None):
        from meshstyle.raster.rasterizer import Rasterizer

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
        from meshstyle.outputs.render import render_fragments

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


def _back_project(camera: Camera, rows: np.ndarray, cols: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points of pixels (row, col) at z-depth `depth`, and their camera-space rays (z = 1)."""
    rays = np.linalg.solve(camera.K, np.stack([cols, rows, np.ones_like(cols)]).astype(np.float64)).T
    points_cam = rays * depth[:, None]
    rotation, origin = camera.cam_to_world[:3, :3], camera.cam_to_world[:3, 3]
    return points_cam @ rotation.T + origin, rays


# ---------------------------------------------------------------------------------------------
# circles

def red_mask(image: np.ndarray) -> np.ndarray:
    """Pixels closer to pure red than to white (see the module doc)."""
    image = np.asarray(image, dtype=np.float32)
    return image[..., 0] - np.maximum(image[..., 1], image[..., 2]) > REDNESS_THRESHOLD


def _has_red_discs(style_image: np.ndarray) -> bool:
    return float(red_mask(style_image[..., :3]).mean()) >= 0.005


def find_circles(view: RenderedView, *, already_red: np.ndarray | None = None, min_pixels: int = 20,
                 max_bend_deg: float = 10.0, min_ellipse_iou: float = 0.8) -> list[Circle]:
    """Measure every usable red blob of one view on its surface (module doc, steps 1-3).

    already_red: (H,W) pixels that are red in the mesh's own colours; blobs mostly made of them
    (a red rug, not a stroke) are not counted.
    """
    fragments = view.fragments
    on_mesh = fragments.mask.numpy()
    depth = fragments.depth.numpy().astype(np.float64)
    normals = fragments.normal.numpy().astype(np.float64)
    height, width = on_mesh.shape
    labels, _ = ndimage.label(red_mask(view.image) & on_mesh)
    camera = view.camera
    focal_area = camera.K[0, 0] * camera.K[1, 1]
    circles = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        rows_box, cols_box = box
        if rows_box.start == 0 or cols_box.start == 0 or rows_box.stop == height or cols_box.stop == width:
            continue
        # One pixel of margin around the blob for its ring (the border case is excluded above).
        window = (slice(rows_box.start - 1, rows_box.stop + 1), slice(cols_box.start - 1, cols_box.stop + 1))
        blob = labels[window] == index
        if blob.sum() < min_pixels:
            continue
        ring = ndimage.binary_dilation(blob) & ~blob
        if not on_mesh[window][ring].all():
            continue
        if _ellipse_iou(blob) < min_ellipse_iou:
            continue

        rows, cols = np.nonzero(blob)
        rows, cols = rows + window[0].start, cols + window[1].start
        if already_red is not None and already_red[rows, cols].mean() > 0.5:
            continue
        blob_normals = normals[rows, cols]
        plane_normal = blob_normals.mean(0)
        plane_normal /= np.linalg.norm(plane_normal)
        if (blob_normals @ plane_normal).min() < np.cos(np.radians(max_bend_deg)):
            continue
        points, rays = _back_project(camera, rows, cols, depth[rows, cols])
        centre = points.mean(0)

        ring_rows, ring_cols = np.nonzero(ring)
        ring_rows, ring_cols = ring_rows + window[0].start, ring_cols + window[1].start
        ring_points, _ = _back_project(camera, ring_rows, ring_cols, depth[ring_rows, ring_cols])
        # Something in front of or behind the blob's surface cuts it: its measured shape is partial.
        if np.abs((ring_points - centre) @ plane_normal).max() > 0.02 * depth[rows, cols].mean():
            continue

        ray_lengths = np.linalg.norm(rays, axis=1)
        world_rays = (rays / ray_lengths[:, None]) @ camera.cam_to_world[:3, :3].T
        cos_view = np.abs(world_rays @ plane_normal).clip(1e-3, 1.0)
        # Surface area seen by each pixel: depth^2 cos(off-axis) / (fx fy cos(view angle)).
        area = depth[rows, cols] ** 2 / ray_lengths / (focal_area * cos_view)

        axis_u = np.cross(plane_normal, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis_u) < 0.1:
            axis_u = np.cross(plane_normal, [0.0, 1.0, 0.0])
        axis_u /= np.linalg.norm(axis_u)
        axis_v = np.cross(plane_normal, axis_u)
        in_plane = np.stack([(points - centre) @ axis_u, (points - centre) @ axis_v], axis=1)
        weights = area / area.sum()
        mean = weights @ in_plane
        offsets = in_plane - mean
        moments = (offsets * weights[:, None]).T @ offsets
        minor_var, major_var = np.linalg.eigvalsh(moments)
        if minor_var <= 0:
            continue

        centre_ray = np.linalg.solve(camera.K, [cols.mean(), rows.mean(), 1.0])
        centre_ray = camera.cam_to_world[:3, :3] @ (centre_ray / np.linalg.norm(centre_ray))
        circles.append(Circle(
            radius_m=float(np.sqrt(area.sum() / np.pi)),
            stretch=float(np.sqrt(major_var / minor_var)),
            depth_m=float(depth[rows, cols].mean()),
            angle_deg=float(np.degrees(np.arccos(min(1.0, abs(centre_ray @ plane_normal))))),
        ))
    return circles


def _ellipse_iou(blob: np.ndarray) -> float:
    """Overlap of a pixel blob with the ellipse of its own second moments (1 for a clean ellipse)."""
    # Room for a moment ellipse that reaches beyond the blob's box (an L-shaped blob's does).
    blob = np.pad(blob, max(blob.shape) // 2)
    rows, cols = np.nonzero(blob)
    points = np.stack([rows, cols], axis=1).astype(np.float64)
    mean = points.mean(0)
    covariance = np.cov((points - mean).T, bias=True) + np.eye(2) / 12.0   # pixels are squares
    # A uniform ellipse has covariance (semi-axes^2)/4, so it is {x : x^T C^-1 x <= 4}.
    grid_rows, grid_cols = np.mgrid[0:blob.shape[0], 0:blob.shape[1]]
    offsets = np.stack([grid_rows - mean[0], grid_cols - mean[1]], axis=-1)
    inside = np.einsum("...i,ij,...j->...", offsets, np.linalg.inv(covariance), offsets) <= 4.0
    return float((inside & blob).sum() / (inside | blob).sum())


def circle_metrics(views: list[RenderedView], originals: list[RenderedView] | None = None, *,
                   min_pixels: int = 20) -> dict[str, float]:
    """Figures over the blobs of all views; `originals` (the same views with the initial texture)
    rule out blobs that were red before stylization."""
    already_red = [None] * len(views) if originals is None else [red_mask(view.image) for view in originals]
    circles = [circle for view, red in zip(views, already_red)
               for circle in find_circles(view, already_red=red, min_pixels=min_pixels)]
    if not circles:
        return {"skipped": "no red discs found in the views"}
    radius = np.array([c.radius_m for c in circles])
    stretch = np.array([c.stretch for c in circles])
    depth = np.array([c.depth_m for c in circles])
    angle = np.array([c.angle_deg for c in circles])
    median = float(np.median(radius))
    return {
        "radius_median_m": median,
        "radius_spread": float(np.median(np.abs(radius - median)) / median),
        "stretch_median": float(np.median(stretch)),
        "radius_depth_corr": _spearman(radius, depth),
        "stretch_angle_corr": _spearman(stretch, angle),
        "count": float(len(circles)),
        "views": float(len(views)),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


# ---------------------------------------------------------------------------------------------
# VGG features of views (shared by style and content)

class _FeatureCache:
    """VGG features per image at every layer any requested metric needs, one forward pass each."""

    def __init__(self, layers: Sequence[str]):
        self.layers = tuple(dict.fromkeys(layers))
        self._vgg = None
        self._cache: dict[int, tuple[object, dict[str, torch.Tensor]]] = {}

    def __call__(self, image: np.ndarray, key: object | None = None) -> dict[str, torch.Tensor]:
        # Keyed by identity; the key object is kept alive with its entry so its id is not reused.
        if key is not None and id(key) in self._cache:
            return self._cache[id(key)][1]
        if self._vgg is None:
            from meshstyle.stylize.vgg import load_vgg
            self._vgg = load_vgg()
        batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            computed = {layer: value[0] for layer, value in self._vgg(batch, self.layers).items()}
        if key is not None:
            self._cache[id(key)] = (key, computed)
        return computed


def _covered_cells(mask: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(h,w) bool: feature cells whose whole receptive patch of pixels lies on the mesh."""
    coverage = F.adaptive_avg_pool2d(torch.from_numpy(mask.astype(np.float32))[None, None], size)[0, 0]
    return coverage > 0.999


def _masked_features(features: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """(C,h,w) -> (N,C) feature vectors of covered cells."""
    cells = _covered_cells(mask, tuple(features.shape[-2:]))
    return features[:, cells].T


# ---------------------------------------------------------------------------------------------
# style

@dataclass
class _ProjectedStyle:
    """The style's features of one layer along fixed random directions, ready for comparisons."""
    directions: torch.Tensor   # (C,K) unit columns
    quantiles: torch.Tensor    # (Q,K) sorted projections at evenly spaced quantiles
    spread: torch.Tensor       # () RMS over directions of the projections' standard deviation

    @classmethod
    def of(cls, points: torch.Tensor, directions: torch.Tensor, quantiles: int = 256) -> "_ProjectedStyle":
        projected = points @ directions
        return cls(directions, _quantiles(projected, quantiles),
                   projected.std(dim=0).pow(2).mean().sqrt().clamp_min(1e-8))

    def distance(self, points: torch.Tensor) -> float:
        """Sliced 2-Wasserstein distance of points (N,C) to the style, in units of its spread."""
        gap = _quantiles(points @ self.directions, len(self.quantiles)) - self.quantiles
        return float(gap.pow(2).mean().sqrt() / self.spread)


def _quantiles(values: torch.Tensor, count: int) -> torch.Tensor:
    """(N,K) -> (count,K) evenly spaced quantiles per column (nearest rank; sets differ in size)."""
    ranks = torch.linspace(0, len(values) - 1, count).round().long()
    return values.sort(dim=0).values[ranks]


def style_metrics(views: list[RenderedView], style_image: np.ndarray, *, style_size: int = 384,
                  seed: int = 0, features: "_FeatureCache | None" = None,
                  directions_per_layer: int = 64) -> dict[str, float]:
    features = features or _FeatureCache(STYLE_LAYERS)
    style = resize_long_side(np.asarray(style_image, dtype=np.float32)[..., :3], style_size)
    style_features = features(style)
    generator = torch.Generator().manual_seed(seed)
    projected_style = {}
    for layer in STYLE_LAYERS:
        points = style_features[layer].flatten(1).T
        directions = torch.randn(points.shape[1], directions_per_layer, generator=generator)
        projected_style[layer] = _ProjectedStyle.of(points, directions / directions.norm(dim=0, keepdim=True))

    per_layer = {layer: [] for layer in STYLE_LAYERS}
    for view in views:
        mask = view.fragments.mask.numpy()
        view_features = features(view.image, key=view)
        for layer in STYLE_LAYERS:
            points = _masked_features(view_features[layer], mask)
            if len(points) >= 2:
                per_layer[layer].append(projected_style[layer].distance(points))
    if not any(per_layer.values()):
        return {"skipped": "no view covers a whole feature cell"}
    layer_means = {layer: float(np.mean(values)) for layer, values in per_layer.items() if values}
    figures = {"swd": float(np.mean(list(layer_means.values())))}
    figures.update({f"swd_{layer}": value for layer, value in layer_means.items()})
    figures["views"] = float(len(views))
    return figures


# ---------------------------------------------------------------------------------------------
# content

def content_metrics(views: list[RenderedView], targets: list[RenderedView], *,
                    features: "_FeatureCache | None" = None) -> dict[str, float]:
    features = features or _FeatureCache((CONTENT_LAYER,))
    distances, similarities = [], []
    for view, target in zip(views, targets):
        mask = view.fragments.mask.numpy()
        rendered = _masked_features(features(view.image, key=view)[CONTENT_LAYER], mask)
        wanted = _masked_features(features(target.image, key=target)[CONTENT_LAYER], mask)
        if len(wanted):
            distances.append(float((rendered - wanted).pow(2).sum() / wanted.pow(2).sum().clamp_min(1e-12)))
        if mask.any():
            similarities.append(ssim(view.image, target.image, mask))
    if not similarities:
        return {"skipped": "the views do not see the mesh"}
    figures = {"ssim": float(np.mean(similarities))}
    if distances:
        figures["feature_distance"] = float(np.mean(distances))
    figures["views"] = float(len(views))
    return figures


def ssim(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004) of two (H,W,3) images in [0,1] over `mask`."""
    radius = int(np.ceil(3 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps /= taps.sum()
    kernel = (taps[:, None] * taps[None, :]).expand(3, 1, -1, -1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (radius,) * 4, mode="replicate"), kernel, groups=3)

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    y = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).permute(2, 0, 1)[None]
    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x ** 2
    var_y = blur(y * y) - mean_y ** 2
    cov = blur(x * y) - mean_x * mean_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / ((mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2))
    ssim_map = ssim_map[0].mean(0).numpy()
    if mask is None:
        return float(ssim_map.mean())
    # Windows that reach off the mesh compare background, not content.
    inner = ndimage.binary_erosion(mask, iterations=radius)
    selected = inner if inner.any() else mask
    return float(ssim_map[selected].mean())


# ---------------------------------------------------------------------------------------------
# seams

def edge_classes(mesh: TexturedMesh) -> tuple[np.ndarray, np.ndarray]:
    """Face pairs sharing a 3-D edge, as sorted keys `f_low * F + f_high`, and whether each edge
    is a UV seam (its corners have different UVs on the two faces)."""
    faces = _welded_faces(mesh.vertices, mesh.faces)
    face_count = len(faces)
    corner_pairs = np.array([[0, 1], [1, 2], [2, 0]])
    edge_vertices = faces[:, corner_pairs]                           # (F,3,2) welded vertex ids
    edge_uvs = mesh.uv[:, corner_pairs].astype(np.float64)           # (F,3,2,2)
    # Orient every edge from its lower vertex id so that both faces list its corners alike.
    flip = edge_vertices[..., 0] > edge_vertices[..., 1]
    edge_vertices = np.where(flip[..., None], edge_vertices[..., ::-1], edge_vertices)
    edge_uvs = np.where(flip[..., None, None], edge_uvs[:, :, ::-1], edge_uvs)
    edge_keys = edge_vertices[..., 0].astype(np.int64) * (faces.max() + 1) + edge_vertices[..., 1]
    edge_keys, edge_uvs = edge_keys.reshape(-1), edge_uvs.reshape(-1, 4)
    face_of = np.repeat(np.arange(face_count), 3)
    order = np.argsort(edge_keys, kind="stable")
    edge_keys, edge_uvs, face_of = edge_keys[order], edge_uvs[order], face_of[order]
    # Pair consecutive entries of one edge (manifold edges have two faces; extra faces pair on).
    same = edge_keys[1:] == edge_keys[:-1]
    first, second = np.nonzero(same)[0], np.nonzero(same)[0] + 1
    face_a, face_b = face_of[first], face_of[second]
    seam = np.abs(edge_uvs[first] - edge_uvs[second]).max(axis=1) > 1e-6
    pair_keys = np.minimum(face_a, face_b).astype(np.int64) * face_count + np.maximum(face_a, face_b)
    order = np.argsort(pair_keys)
    return pair_keys[order], seam[order]


def _welded_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces re-indexed so that vertices at one position (to 1e-6 of the extent) share an id."""
    extent = max(float(np.ptp(vertices, axis=0).max()), 1e-9)
    quantised = np.round(vertices / (extent * 1e-6)).astype(np.int64)
    _, welded = np.unique(quantised, axis=0, return_inverse=True)
    return welded.reshape(-1)[faces]


@dataclass
class _EdgeContrast:
    """Mean absolute colour difference across the pixel pairs that straddle each kind of edge."""
    seam_diff: float
    interior_diff: float
    seam_pairs: int
    interior_pairs: int

    @property
    def ratio(self) -> float:
        return self.seam_diff / self.interior_diff if self.interior_diff > 0 else float("nan")


def seam_metrics(views: list[RenderedView], mesh: TexturedMesh,
                 originals: list[RenderedView] | None = None) -> dict[str, float]:
    """Seam figures of the views; with `originals` (the same views with the initial texture) also
    `original_ratio`, the ratio the mesh's own colours already have (they often change at the
    creases where charts end)."""
    pair_keys, is_seam = edge_classes(mesh)
    if not is_seam.any():
        return {"skipped": "the mesh has no UV seams"}
    contrast = _edge_contrast(views, pair_keys, is_seam, len(mesh.faces))
    if contrast.seam_pairs == 0:
        return {"skipped": "no UV seam is in view"}
    figures = {
        "seam_diff": contrast.seam_diff,
        "interior_diff": contrast.interior_diff,
        "ratio": contrast.ratio,
        "seam_pairs": float(contrast.seam_pairs),
        "interior_pairs": float(contrast.interior_pairs),
    }
    if originals is not None:
        figures["original_ratio"] = _edge_contrast(originals, pair_keys, is_seam, len(mesh.faces)).ratio
    figures["views"] = float(len(views))
    return figures


def _edge_contrast(views: list[RenderedView], pair_keys: np.ndarray, is_seam: np.ndarray,
                   face_count: int) -> _EdgeContrast:
    sums = {True: 0.0, False: 0.0}
    counts = {True: 0, False: 0}
    for view in views:
        face_id = view.fragments.face_id.numpy()
        # Right neighbours, then lower neighbours.
        for a_slice, b_slice in (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),
                                 ((slice(0, -1), slice(None)), (slice(1, None), slice(None)))):
            face_a, face_b = face_id[a_slice], face_id[b_slice]
            crossing = (face_a >= 0) & (face_b >= 0) & (face_a != face_b)
            if not crossing.any():
                continue
            low = np.minimum(face_a[crossing], face_b[crossing]).astype(np.int64)
            high = np.maximum(face_a[crossing], face_b[crossing]).astype(np.int64)
            keys = low * face_count + high
            where = np.searchsorted(pair_keys, keys).clip(0, len(pair_keys) - 1)
            # Faces that meet only at a vertex, or across an occlusion, share no edge: not counted.
            adjacent = pair_keys[where] == keys
            difference = np.abs(view.image[a_slice][crossing] - view.image[b_slice][crossing]).mean(axis=1)
            for seam in (True, False):
                chosen = adjacent & (is_seam[where] == seam)
                sums[seam] += float(difference[chosen].sum())
                counts[seam] += int(chosen.sum())

    def mean(seam: bool) -> float:
        return sums[seam] / counts[seam] if counts[seam] else float("nan")

    return _EdgeContrast(seam_diff=mean(True), interior_diff=mean(False),
                         seam_pairs=counts[True], interior_pairs=counts[False])


# ---------------------------------------------------------------------------------------------
# coverage

def coverage_metrics(cameras: list[Camera], fragments: list[Fragments], mesh: TexturedMesh, *,
                     max_size: int = MAX_COVERAGE_SIZE, depth_tolerance: float = 0.02) -> dict[str, float]:
    from meshstyle.atlas.unwrap import rasterize_atlas

    size = int(min(max(mesh.texture.shape[:2]), max_size))
    texel_face, texel_bary = rasterize_atlas(mesh.uv, size)
    used = texel_face >= 0
    used_count = int(used.sum())
    if used_count == 0:
        return {"skipped": "the atlas has no charts"}
    faces = texel_face[used]
    corners = np.asarray(mesh.vertices, dtype=np.float64)[mesh.faces[faces]]     # (T,3,3)
    points = np.einsum("tk,tkd->td", texel_bary[used].astype(np.float64), corners)
    seen = np.zeros(len(points), dtype=bool)
    for camera, view in zip(cameras, fragments):
        seen |= _visible(points, faces, camera, view, depth_tolerance)
    unseen = used_count - int(seen.sum())
    return {
        "seen_share": float(seen.sum() / used_count),
        "unseen_share": float(unseen / used_count),
        "unseen_texels": float(unseen),
        "used_texels": float(used_count),
        "atlas_size": float(size),
        "views": float(len(cameras)),
    }


def _visible(points: np.ndarray, faces: np.ndarray, camera: Camera, fragments: Fragments,
             depth_tolerance: float) -> np.ndarray:
    """Which surface points the view sees: in the image and not behind what its pixel shows."""
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
