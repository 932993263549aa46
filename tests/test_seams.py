"""Seam fill: a chart's gutter holds the paint of the surface across its border."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from meshstyle.atlas.charts import MIN_CHART_SIDE_TEXELS, chart_fragmentation, chart_labels
from meshstyle.atlas.seams import build_seam_fill, face_adjacency, fill_seams, fill_seams_numpy, seam_fill_for
from meshstyle.atlas.unwrap import fill_gutter, make_atlas, project_charts, rasterize_atlas, sample_wrapped
from meshstyle.geometry.scene import Appearance, Scene

SIZE = 128


def cube(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A unit cube of (subdivisions+1)^2 x 2 triangles per side, vertices shared along its edges."""
    steps = np.linspace(0.0, 1.0, subdivisions + 2)
    vertices, faces, index = [], [], {}

    def vertex(point):
        key = tuple(np.round(point, 9))
        if key not in index:
            index[key] = len(vertices)
            vertices.append(point)
        return index[key]

    for axis in range(3):
        for side in (0.0, 1.0):
            u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
            for i in range(len(steps) - 1):
                for j in range(len(steps) - 1):
                    quad = []
                    for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                        point = np.zeros(3)
                        point[axis], point[u_axis], point[v_axis] = side, steps[i + du], steps[j + dv]
                        quad.append(vertex(point))
                    a, b, c, d = quad if side else quad[::-1]
                    faces += [[a, b, c], [a, c, d]]
    return np.array(vertices, dtype=np.float64), np.array(faces, dtype=np.int64)


def strokes(covered: np.ndarray, seed: int = 0) -> np.ndarray:
    """Smooth random paint (blobs a few texels wide) on the covered texels, black elsewhere: every
    chart painted independently, as the optimiser does, so nothing matches across edges by itself."""
    rng = np.random.default_rng(seed)
    paint = np.stack([gaussian_filter(rng.normal(size=covered.shape), 2.0) for _ in range(3)], axis=-1)
    paint = (paint - paint.min()) / (paint.max() - paint.min())
    return np.where(covered[..., None], paint, 0.0).astype(np.float32)


def edge_mismatch(texture: np.ndarray, vertices, faces, uv) -> float:
    """Mean |colour| difference between the two charts' lookups at points along every 3-D edge
    where two charts meet (bilinear, as a renderer reads the texture)."""
    adjacent, chart = face_adjacency(vertices, faces), chart_labels(uv)
    differences = []
    for face_a in range(len(faces)):
        for corner in range(3):
            face_b = adjacent[face_a, corner]
            if face_b < 0 or chart[face_a] == chart[face_b]:
                continue
            start, end = faces[face_a, (corner + 1) % 3], faces[face_a, (corner + 2) % 3]
            b_corners = list(faces[face_b])
            for t in np.linspace(0.1, 0.9, 9):
                uv_a = (1 - t) * uv[face_a, (corner + 1) % 3] + t * uv[face_a, (corner + 2) % 3]
                uv_b = (1 - t) * uv[face_b, b_corners.index(start)] + t * uv[face_b, b_corners.index(end)]
                differences.append(np.abs(sample_wrapped(texture, uv_a[None]) - sample_wrapped(texture, uv_b[None])).mean())
    assert differences, "no chart edges found"
    return float(np.mean(differences))


@pytest.fixture(scope="module")
def cube_atlas():
    vertices, faces = cube()
    uv = project_charts(vertices, faces, SIZE)
    assert len(np.unique(chart_labels(uv))) == 6          # every side of the cube its own chart
    face_id, _ = rasterize_atlas(uv, SIZE)
    return vertices, faces, uv, face_id >= 0


def test_cube_edges_show_continuous_colour_after_the_seam_fill(cube_atlas):
    vertices, faces, uv, covered = cube_atlas
    seams = build_seam_fill(vertices, faces, uv, SIZE)
    assert seams.across > 0 and seams.across == len(seams.gutter)   # a closed cube: every gutter crosses
    paint = strokes(covered)
    dilated = edge_mismatch(fill_gutter(paint, covered, 4), vertices, faces, uv)
    seamless = edge_mismatch(fill_seams_numpy(paint, seams), vertices, faces, uv)
    # Dilation keeps each chart's own border colour; the seam fill makes both sides read the same
    # paint up to the half-texel offset of the two texel grids.
    assert seamless < 0.45 * dilated, (seamless, dilated)
    assert seamless < 0.05


def test_seam_fill_reads_only_painted_texels_and_passes_gradients_across(cube_atlas):
    vertices, faces, uv, covered = cube_atlas
    seams = build_seam_fill(vertices, faces, uv, SIZE)
    assert covered.ravel()[seams.source[seams.weight > 0]].all()
    assert not covered.ravel()[seams.gutter].any()
    np.testing.assert_allclose(seams.weight.sum(axis=1), 1.0, atol=1e-5)

    paint = torch.from_numpy(strokes(covered)).permute(2, 0, 1).contiguous().requires_grad_(True)
    filled = fill_seams(paint, seams)
    np.testing.assert_allclose(filled.detach().permute(1, 2, 0).numpy(),
                               fill_seams_numpy(paint.detach().permute(1, 2, 0).numpy(), seams), atol=1e-6)
    # A loss on the gutter texels alone moves only the painted texels across the seams.
    gutter = torch.zeros(SIZE * SIZE, dtype=torch.bool)
    gutter[torch.from_numpy(seams.gutter)] = True
    (filled.reshape(3, -1)[:, gutter]).sum().backward()
    gradient = paint.grad.reshape(3, -1)
    assert gradient[:, gutter].abs().sum() == 0
    assert gradient.sum().item() == pytest.approx(3 * len(seams.gutter), rel=1e-4)


def test_seam_map_is_cached(cube_atlas, tmp_path, monkeypatch):
    monkeypatch.setenv("MESHSTYLE_CACHE", str(tmp_path))
    vertices, faces, uv, _ = cube_atlas
    first = seam_fill_for(vertices, faces, uv, SIZE)
    second = seam_fill_for(vertices, faces, uv, SIZE)
    assert not first.cached and second.cached
    assert np.array_equal(first.source, second.source) and np.array_equal(first.gutter, second.gutter)


def grid_scene(per_face_charts: bool) -> Scene:
    """A 2 m square floor of 8x8 quads with a texture, its atlas either one chart for the whole
    floor or every triangle its own island (as scanning pipelines write them)."""
    steps = np.linspace(0.0, 2.0, 9)
    vertices = np.array([[x, y, 0.0] for y in steps for x in steps])
    faces = []
    for j in range(8):
        for i in range(8):
            a, b, c, d = j * 9 + i, j * 9 + i + 1, (j + 1) * 9 + i + 1, (j + 1) * 9 + i
            faces += [[a, b, c], [a, c, d]]
    faces = np.array(faces, dtype=np.int64)
    if per_face_charts:
        cell = 1.0 / 12
        corners = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]) * cell
        origins = np.array([[(k % 12) * cell, (k // 12) * cell] for k in range(len(faces))])
        uv = origins[:, None, :] + corners[None]
    else:
        # Slightly off the texel grid, so no texel centre lies on a shared edge (claimed twice).
        uv = vertices[faces][..., :2] / 2.0 * [0.97, 0.95] + [0.011, 0.023]
    texture = np.random.default_rng(0).uniform(size=(32, 32, 3)).astype(np.float32)
    return Scene("floor", vertices, faces, Appearance(uv=uv.astype(np.float32), textures=[texture],
                                                      face_texture=np.zeros(len(faces), dtype=np.int32)))


def test_an_atlas_of_tiny_charts_is_unwrapped_again_and_a_whole_one_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHSTYLE_CACHE", str(tmp_path))
    tiny, whole = grid_scene(True), grid_scene(False)
    fragmented, figures = chart_fragmentation(tiny.appearance.uv, 256)
    assert fragmented and figures["charts"] == 128 and figures["median_chart_side_texels"] < MIN_CHART_SIDE_TEXELS
    assert not chart_fragmentation(whole.appearance.uv, 256)[0]
    assert make_atlas(whole, 256).method == "kept"
    unwrapped = make_atlas(tiny, 256)
    assert unwrapped.method != "kept" and unwrapped.charts == 1
