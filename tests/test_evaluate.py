"""Known answers for the evaluation metrics, made in code: painted discs on a tilted plane, a cube
with per-face charts, half-seen planes, a textured style image."""
from __future__ import annotations

import math

import numpy as np
import trimesh

from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at
from meshstyle.evaluate.circles import find_circles
from meshstyle.evaluate.metrics import METRICS, evaluate, flatten_metrics, format_table
from meshstyle.evaluate.rendering import rendered_views
from meshstyle.geometry.scene import TexturedMesh

PLANE_HALF = 1.0          # the plane spans [-1, 1] x [-1, 1] metres
TEXTURE = 512             # texels per side: 256 texels per metre on the plane
RED, WHITE = np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0])


# --- scenes built in code ---------------------------------------------------------------------

def plane_mesh(texture: np.ndarray, tilt_deg: float = 0.0, subdivisions: int = 4) -> TexturedMesh:
    """A square plane through the origin (normal +z, then tilted about the x axis) with a UV map of
    uniform texel density: u = (x + 1) / 2, v = (y + 1) / 2 in plane coordinates."""
    ticks = np.linspace(-PLANE_HALF, PLANE_HALF, subdivisions + 1)
    xs, ys = np.meshgrid(ticks, ticks, indexing="xy")
    plane_points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    n = subdivisions + 1
    faces = []
    for row in range(subdivisions):
        for col in range(subdivisions):
            a, b, c, d = row * n + col, row * n + col + 1, (row + 1) * n + col, (row + 1) * n + col + 1
            faces += [[a, b, d], [a, d, c]]
    faces = np.array(faces, dtype=np.int64)
    vertices = np.concatenate([plane_points, np.zeros((len(plane_points), 1))], axis=1)
    rotation = trimesh.transformations.rotation_matrix(math.radians(tilt_deg), [1, 0, 0])[:3, :3]
    vertices = vertices @ rotation.T
    uv = ((plane_points[faces] + PLANE_HALF) / (2 * PLANE_HALF)).astype(np.float32)
    return TexturedMesh(vertices=vertices, faces=faces, uv=uv, texture=texture.astype(np.float32))


def plane_to_world(tilt_deg: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(math.radians(tilt_deg), [1, 0, 0])[:3, :3]


def texel_plane_coordinates(size: int = TEXTURE) -> tuple[np.ndarray, np.ndarray]:
    """Plane (x, y) in metres of every texel centre; row 0 is the top of the image (v = 1)."""
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    u, v = cols / size, 1.0 - rows / size
    return (2 * u - 1) * PLANE_HALF, (2 * v - 1) * PLANE_HALF


def disc_centres(spacing: float = 0.4) -> np.ndarray:
    ticks = np.arange(-PLANE_HALF + spacing / 2, PLANE_HALF, spacing)
    return np.array([(x, y) for x in ticks for y in ticks])


def paint_ellipses(centres: np.ndarray, semi_x: float, semi_y: float) -> np.ndarray:
    """White texture with red ellipses (semi-axes in metres along plane x and y), anti-aliased."""
    x, y = texel_plane_coordinates()
    texels_per_metre = TEXTURE / (2 * PLANE_HALF)
    alpha = np.zeros_like(x)
    for cx, cy in centres:
        # Signed distance to the boundary, approximately, in texels: a one-texel soft edge.
        radial = np.sqrt(((x - cx) / semi_x) ** 2 + ((y - cy) / semi_y) ** 2)
        inside_metres = (1.0 - radial) * min(semi_x, semi_y)
        alpha = np.maximum(alpha, np.clip(0.5 + inside_metres * texels_per_metre, 0, 1))
    return WHITE * (1 - alpha[..., None]) + RED * alpha[..., None]


def oblique_camera(tilt_deg: float, view_deg: float, distance: float = 2.4,
                   width: int = 480, height: int = 360, fov: float = 55.0) -> Camera:
    """A camera `view_deg` off the normal of the tilted plane, looking at its centre."""
    rotation = plane_to_world(tilt_deg)
    normal = rotation @ np.array([0.0, 0.0, 1.0])
    along = rotation @ np.array([0.0, 1.0, 0.0])
    eye = distance * (math.cos(math.radians(view_deg)) * normal - math.sin(math.radians(view_deg)) * along)
    return Camera(K=intrinsics_from_fov(width, height, fov), cam_to_world=look_at(eye, np.zeros(3)),
                  width=width, height=height)


def project(camera: Camera, points: np.ndarray) -> np.ndarray:
    world_to_cam = np.linalg.inv(camera.cam_to_world)
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    pixels = cam @ camera.K.T
    return pixels[:, :2] / pixels[:, 2:]


def cube_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Unit cube, 8 shared vertices, each side its own chart in a 3x2 atlas (UV seams on every edge).

    Returns vertices, faces, per-corner uv and per side (origin, edge_s, edge_t) in 3-D, where the
    side's chart maps uv-chart coordinates (s, t) in [0,1]^2 to origin + s * edge_s + t * edge_t.
    """
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    vertices = np.asarray(box.vertices, dtype=np.float64)
    sides = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = np.zeros(3)
            normal[axis] = sign
            s_axis, t_axis = np.eye(3)[(axis + 1) % 3], np.eye(3)[(axis + 2) % 3]
            if sign < 0:
                s_axis, t_axis = t_axis, s_axis   # keep (s, t, normal) right-handed
            origin = 0.5 * normal - 0.5 * s_axis - 0.5 * t_axis
            sides.append((origin, s_axis, t_axis))
    faces, uv = [], []
    cell, gutter = 1.0 / 3.0, 0.03
    for index, (origin, s_axis, t_axis) in enumerate(sides):
        corner_ids = []
        for s, t in ((0, 0), (1, 0), (1, 1), (0, 1)):
            point = origin + s * s_axis + t * t_axis
            corner_ids.append(int(np.argmin(np.linalg.norm(vertices - point, axis=1))))
        chart_u, chart_v = (index % 3) * cell + gutter, (index // 3) * 0.5 + gutter
        span_u, span_v = cell - 2 * gutter, 0.5 - 2 * gutter
        corner_uv = [(chart_u + s * span_u, chart_v + t * span_v) for s, t in ((0, 0), (1, 0), (1, 1), (0, 1))]
        for a, b, c in ((0, 1, 2), (0, 2, 3)):
            faces.append([corner_ids[a], corner_ids[b], corner_ids[c]])
            uv.append([corner_uv[a], corner_uv[b], corner_uv[c]])
    return vertices, np.array(faces, dtype=np.int64), np.array(uv, dtype=np.float32), sides


def cube_texture(sides, colour_of_point, size: int = 256) -> np.ndarray:
    """Bake `colour_of_point(points (N,3)) -> (N,3)` into the cube's 3x2 atlas, the gutter included
    (each chart's map extended beyond its square, so lookups near the edge stay on the function)."""
    texture = np.zeros((size, size, 3), dtype=np.float32)
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    u, v = cols / size, 1.0 - rows / size
    cell, gutter = 1.0 / 3.0, 0.03
    span_u, span_v = cell - 2 * gutter, 0.5 - 2 * gutter
    for index, (origin, s_axis, t_axis) in enumerate(sides):
        in_cell = ((u >= (index % 3) * cell) & (u < (index % 3 + 1) * cell)
                   & (v >= (index // 3) * 0.5) & (v < (index // 3 + 1) * 0.5))
        s = (u[in_cell] - (index % 3) * cell - gutter) / span_u
        t = (v[in_cell] - (index // 3) * 0.5 - gutter) / span_v
        points = origin + s[:, None] * s_axis + t[:, None] * t_axis
        texture[in_cell] = colour_of_point(points, index)
    return texture


def corner_camera(width: int = 320, height: int = 240) -> Camera:
    eye = np.array([1.6, -1.9, 1.4])
    return Camera(K=intrinsics_from_fov(width, height, 50.0), cam_to_world=look_at(eye, np.zeros(3)),
                  width=width, height=height)


def style_picture(size: int = 192, seed: int = 3) -> np.ndarray:
    """A colourful, structured 'painting': overlapping strokes on a warm ground (seeded)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.9 - 0.3 * rows, 0.7 + 0.1 * np.sin(9 * cols), 0.4 + 0.2 * rows], axis=-1)
    for _ in range(60):
        centre, angle = rng.uniform(0, 1, 2), rng.uniform(0, np.pi)
        along = (cols - centre[0]) * np.cos(angle) + (rows - centre[1]) * np.sin(angle)
        across = -(cols - centre[0]) * np.sin(angle) + (rows - centre[1]) * np.cos(angle)
        stroke = (np.abs(along) < rng.uniform(0.05, 0.15)) & (np.abs(across) < rng.uniform(0.005, 0.02))
        image[stroke] = rng.uniform(0, 1, 3)
    return image.clip(0, 1).astype(np.float32)


# --- circles ----------------------------------------------------------------------------------

TILT, VIEW = 35.0, 50.0


def measured_circles(texture: np.ndarray):
    mesh = plane_mesh(texture, tilt_deg=TILT)
    camera = oblique_camera(TILT, VIEW, distance=1.8)
    return find_circles(rendered_views(mesh, [camera])[0]), camera


def test_circles_of_known_radius_on_a_tilted_plane_are_measured_on_the_surface():
    radius = 0.1
    centres = disc_centres()
    circles, camera = measured_circles(paint_ellipses(centres, radius, radius))

    # Discs wholly inside the image (2 px margin) must be measured; discs cut by the border must not.
    rotation = plane_to_world(TILT)
    angles = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    inside, cut = 0, 0
    for cx, cy in centres:
        rim = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles), np.zeros_like(angles)], 1)
        pixels = project(camera, rim @ rotation.T)
        clear = ((pixels[:, 0] > 2) & (pixels[:, 0] < camera.width - 3)
                 & (pixels[:, 1] > 2) & (pixels[:, 1] < camera.height - 3))
        outside = ((pixels[:, 0] < -0.5) | (pixels[:, 0] > camera.width - 0.5)
                   | (pixels[:, 1] < -0.5) | (pixels[:, 1] > camera.height - 0.5))
        inside += bool(clear.all())
        cut += bool(outside.any())
    assert inside >= 6 and cut >= 2, "the test view should show whole discs and discs cut by the border"
    assert inside <= len(circles) <= len(centres) - cut

    radii = np.array([c.radius_m for c in circles])
    stretch = np.array([c.stretch for c in circles])
    # The view angle makes the image ellipses 1/cos(50 deg) = 1.56 stretched; on the surface they are round.
    assert abs(np.median(radii) - radius) < 0.1 * radius
    assert np.abs(radii - radius).max() < 0.15 * radius
    assert np.median(stretch) < 1.15
    assert np.ptp([c.depth_m for c in circles]) > 0.5, "discs at several depths"
    assert np.median([c.angle_deg for c in circles]) > 35


def test_ellipses_stretched_two_to_one_on_the_surface_are_detected():
    circles, _ = measured_circles(paint_ellipses(disc_centres(), 0.14, 0.07))
    stretch = np.median([c.stretch for c in circles])
    assert len(circles) >= 4
    assert 1.8 < stretch < 2.2
    # Area-equivalent radius of a 0.14 x 0.07 ellipse: sqrt(0.14 * 0.07) = 0.099.
    assert abs(np.median([c.radius_m for c in circles]) - 0.099) < 0.01


def test_evaluate_circles_figures_flatten_and_table():
    mesh = plane_mesh(paint_ellipses(disc_centres(), 0.1, 0.1), tilt_deg=TILT)
    cameras = [oblique_camera(TILT, VIEW, distance=1.8), oblique_camera(TILT, 20.0, distance=3.0)]
    results = evaluate(mesh, cameras=cameras, metrics=["circles", "content", "style"])
    circles = results["circles"]
    assert abs(circles["radius_median_m"] - 0.1) < 0.01
    assert circles["radius_spread"] < 0.05
    assert circles["stretch_median"] < 1.15
    assert circles["count"] >= 8
    assert results["content"] == {"skipped": "no original texture"}
    assert results["style"] == {"skipped": "no style image"}

    flat = flatten_metrics(results)
    assert flat["circles.radius_median_m"] == circles["radius_median_m"]
    assert set(flat) == {f"circles.{key}" for key in circles}
    table = format_table(results)
    assert "radius_median_m" in table and "no style image" in table

    # Red that was already in the mesh's own colours is not a stroke.
    unchanged = evaluate(mesh, original=mesh, cameras=cameras, metrics=["circles"], geometry_height=360)
    assert unchanged["circles"] == {"skipped": "no red discs found in the views"}

    # Not the circles style: circles is skipped instead of measuring random red.
    grey_style = np.full((64, 64, 3), 0.5, np.float32)
    skipped = evaluate(mesh, cameras=cameras, style_image=grey_style, metrics=["circles"])
    assert "skipped" in skipped["circles"]
    assert set(METRICS) == {"circles", "style", "content", "seams", "coverage"}


# --- seams ------------------------------------------------------------------------------------

def smooth_colour(points: np.ndarray, _side: int) -> np.ndarray:
    return 0.5 + 0.35 * np.sin(points @ np.array([[2.0, 0.5, 1.0], [1.0, 2.5, 0.3], [0.4, 1.0, 2.0]]).T)


def test_hard_colour_jumps_along_uv_seams_score_worse_than_a_consistent_texture():
    vertices, faces, uv, sides = cube_mesh()
    chart_colours = np.random.default_rng(0).uniform(0.1, 0.9, (6, 3))
    jumpy = cube_texture(sides, lambda points, side: smooth_colour(points, side) * 0.3 + chart_colours[side] * 0.7)
    consistent = cube_texture(sides, smooth_colour)
    cameras = [corner_camera()]
    consistent_mesh = TexturedMesh(vertices, faces, uv, consistent)
    # The consistent texture as the original: its ratio comes along for reference.
    jumpy_seams = evaluate(TexturedMesh(vertices, faces, uv, jumpy), original=consistent_mesh, cameras=cameras,
                           metrics=["seams"])["seams"]
    smooth_seams = evaluate(consistent_mesh, cameras=cameras, metrics=["seams"])["seams"]
    assert jumpy_seams["original_ratio"] == smooth_seams["ratio"]
    assert "original_ratio" not in smooth_seams
    assert smooth_seams["seam_pairs"] > 200 and smooth_seams["interior_pairs"] > 200
    assert smooth_seams["ratio"] < 2.0
    assert jumpy_seams["ratio"] > 4 * smooth_seams["ratio"]
    assert jumpy_seams["seam_diff"] > 0.1


def test_seams_are_found_when_an_exporter_split_vertices_at_them():
    vertices, faces, uv, sides = cube_mesh()
    # One vertex per corner of every face, as GLB exporters write meshes with UV seams.
    split_vertices = vertices[faces].reshape(-1, 3)
    split_faces = np.arange(len(split_vertices)).reshape(-1, 3)
    texture = cube_texture(sides, smooth_colour)
    shared = evaluate(TexturedMesh(vertices, faces, uv, texture), cameras=[corner_camera()], metrics=["seams"])
    split = evaluate(TexturedMesh(split_vertices, split_faces, uv, texture), cameras=[corner_camera()],
                     metrics=["seams"])
    assert split["seams"]["seam_pairs"] == shared["seams"]["seam_pairs"] > 0
    assert split["seams"]["interior_pairs"] == shared["seams"]["interior_pairs"] > 0


# --- coverage ---------------------------------------------------------------------------------

def test_a_view_of_half_the_plane_covers_half_the_atlas():
    mesh = plane_mesh(np.full((256, 256, 3), 0.5, np.float32), subdivisions=2)
    # Looking straight down from 1 m above x = 1 with a 90 degree square view: x in [0, 2], y in [-1, 1].
    eye = np.array([1.0, 0.0, 1.0])
    camera = Camera(K=intrinsics_from_fov(200, 200, 90.0), cam_to_world=look_at(eye, np.array([1.0, 0.0, 0.0])),
                    width=200, height=200)
    coverage = evaluate(mesh, cameras=[camera], metrics=["coverage"])["coverage"]
    assert abs(coverage["seen_share"] - 0.5) < 0.03
    assert abs(coverage["unseen_texels"] - 0.5 * coverage["used_texels"]) < 0.03 * coverage["used_texels"]

    # A second view of the other half completes it.
    other = Camera(K=camera.K, cam_to_world=look_at(eye * [-1, 1, 1], np.array([-1.0, 0.0, 0.0])),
                   width=200, height=200)
    both = evaluate(mesh, cameras=[camera, other], metrics=["coverage"])["coverage"]
    assert both["seen_share"] > 0.97

    # An occluder half-way to the camera hides its shadow: x in [0.5, 1], y in [-0.25, 0.25] at
    # z = 0.5 hides x in [0, 1], y in [-0.5, 0.5] of the plane, a quarter of it. Its own chart is
    # empty (all corners at one UV), so only the plane's texels count.
    occluder = np.array([[0.5, -0.25, 0.5], [1.0, -0.25, 0.5], [1.0, 0.25, 0.5], [0.5, 0.25, 0.5]])
    shadowed = TexturedMesh(
        vertices=np.concatenate([mesh.vertices, occluder]),
        faces=np.concatenate([mesh.faces, len(mesh.vertices) + np.array([[0, 1, 2], [0, 2, 3]])]),
        uv=np.concatenate([mesh.uv, np.full((2, 3, 2), 0.999, np.float32)]), texture=mesh.texture)
    hidden = evaluate(shadowed, cameras=[camera], metrics=["coverage"])["coverage"]
    assert hidden["used_texels"] == coverage["used_texels"]
    assert abs(hidden["seen_share"] - 0.25) < 0.03


# --- style and content ------------------------------------------------------------------------

def test_a_render_of_the_style_itself_is_closer_to_the_style_than_flat_grey():
    style = style_picture()
    camera = oblique_camera(0.0, 0.0, distance=1.6, width=160, height=160, fov=60.0)
    styled = plane_mesh(style)
    grey = plane_mesh(np.full_like(style, 0.5))
    styled_result = evaluate(styled, original=grey, cameras=[camera], style_image=style,
                             metrics=["style", "content"], style_size=160)
    grey_result = evaluate(grey, original=grey, cameras=[camera], style_image=style,
                           metrics=["style", "content"], style_size=160)
    assert styled_result["style"]["swd"] < 0.5 * grey_result["style"]["swd"]
    for layer in ("relu1_1", "relu2_1", "relu3_1", "relu4_1"):
        assert styled_result["style"][f"swd_{layer}"] < grey_result["style"][f"swd_{layer}"]
    # Content against the grey original: identical for the grey mesh, far for the styled one.
    assert grey_result["content"]["ssim"] > 0.999 and grey_result["content"]["feature_distance"] < 1e-6
    assert styled_result["content"]["ssim"] < 0.8 and styled_result["content"]["feature_distance"] > 0.1
