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

from typing import Sequence

import numpy as np

from meshstyle.errors import InputError
from meshstyle.evaluate.circles import circle_metrics, has_red_discs
from meshstyle.evaluate.content import content_metrics
from meshstyle.evaluate.coverage import coverage_metrics
from meshstyle.evaluate.features import CONTENT_LAYER, STYLE_LAYERS, FeatureCache
from meshstyle.evaluate.rendering import RenderedView, Renderer
from meshstyle.evaluate.seams import seam_metrics
from meshstyle.evaluate.style import style_metrics
from meshstyle.geometry.camera import Camera
from meshstyle.geometry.scene import TexturedMesh

METRICS = ("circles", "style", "content", "seams", "coverage")


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

    wanted = tuple(METRICS if metrics is None else metrics)
    for name in wanted:
        if name not in METRICS:
            raise InputError("--metric", f"unknown metric '{name}' (choose from {', '.join(METRICS)})")

    eval_cameras = list(holdout) if holdout else list(cameras)
    renderer = Renderer(mesh)
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
            rendered[kind] = Renderer(textured, reuse=renderer).render(kind_cameras, textured.texture, desc=kind)
        return rendered[kind]

    # One VGG pass per view serves both feature metrics.
    features = FeatureCache((STYLE_LAYERS if "style" in wanted else ())
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
    if metric == "circles" and style_image is not None and not has_red_discs(style_image):
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
