"""demo-room: a furnished 4 x 5 x 2.7 m room built from tessellated boxes, z-up, metres.

Every piece is a lattice surface: a box whose six sides are grids of small quads. Vertices are
welded on their integer lattice coordinates (exact, unlike welding on rounded floats), so each
piece is one edge-manifold component with consistent winding. The room shell is a box turned
inside out (normals toward the interior) with the door and windows cut out of its lattice as real
holes; furniture is closed boxes (and a sphere) with outward normals. Pieces may interpenetrate
but never share a visible plane, so no surface fights another for the same pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import trimesh

from meshstyle.geometry.scene import Appearance, FaceLabels, Scene

from .blob import smooth_noise

ROOM_SIZE = np.array([4.0, 5.0, 2.7])
SHELL_STEP = 0.05        # 5 cm quads: fine enough for planks, rug and tiles in vertex colours
FURNITURE_STEP = 0.04
JITTER_M = 0.04          # how far a seed moves each furniture group

Paint = Callable[[np.ndarray], np.ndarray]   # vertex positions (V,3) -> colours (V,3)


@dataclass(frozen=True)
class Opening:
    """A rectangular hole in one wall: the wall x = const (axis 0) or y = const (axis 1)."""
    wall_axis: int
    at_max: bool             # the wall at x = 4 / y = 5 rather than x = 0 / y = 0
    along: tuple[float, float]    # extent along the wall, metres (multiples of SHELL_STEP)
    height: tuple[float, float]


OPENINGS = (
    Opening(wall_axis=0, at_max=False, along=(0.40, 1.30), height=(0.0, 2.10)),   # door, west wall
    Opening(wall_axis=1, at_max=True, along=(1.50, 2.70), height=(0.90, 2.10)),   # window, north wall
    Opening(wall_axis=0, at_max=True, along=(1.90, 3.00), height=(1.10, 2.10)),   # window over the sofa
)


@dataclass
class Part:
    """One connected piece of the room with its own vertices, faces and vertex colours."""
    vertices: np.ndarray     # (V,3) float64
    faces: np.ndarray        # (F,3) int64
    colors: np.ndarray       # (V,3) float32
    label: str = ""          # region name (`--region NAME=STYLE`); the shell labels its own faces


def demo_room(seed: int = 0) -> Scene:
    """The built-in furnished room (x in [0,4], y in [0,5], z in [0,2.7]), deterministic per seed."""
    rng = np.random.default_rng(seed)
    parts = [_shell(rng), *_sofa(rng), *_dining_set(rng), *_box_stack(rng), _ball(rng)]
    offsets = np.cumsum([0] + [len(part.vertices) for part in parts[:-1]])
    vertices = np.concatenate([part.vertices for part in parts])
    faces = np.concatenate([part.faces + offset for part, offset in zip(parts, offsets)])
    colors = np.concatenate([part.colors for part in parts])
    colors = np.clip(colors + rng.normal(0, 0.01, size=colors.shape), 0, 1).astype(np.float32)
    return Scene(name="demo-room", vertices=vertices, faces=faces.astype(np.int64),
                 appearance=Appearance(vertex_colors=colors), kind="room", up=(0.0, 0.0, 1.0),
                 source="built-in:demo-room", labels=_labels(parts))


def _labels(parts: list[Part]) -> FaceLabels:
    """Region names like ScanNet's NYU40 classes: the shell's faces are floor, ceiling or wall by
    height, every other part carries its own label."""
    per_face = []
    for part in parts:
        if part.label:
            per_face += [part.label] * len(part.faces)
            continue
        height = part.vertices[part.faces][:, :, 2].mean(axis=1)
        per_face += np.where(height <= 1e-6, "floor",
                             np.where(height >= ROOM_SIZE[2] - 1e-6, "ceiling", "wall")).tolist()
    names = tuple(dict.fromkeys(per_face))
    index = {name: i for i, name in enumerate(names)}
    return FaceLabels(names=names, face=np.array([index[name] for name in per_face], dtype=np.int32),
                      source="demo-room parts")


# ---------------------------------------------------------------------------------------------
# Geometry: lattice boxes

def lattice_box_surface(counts: tuple[int, int, int], inward: bool = False,
                        is_hole: Callable[[np.ndarray], np.ndarray] | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Surface of a box of counts[0] x counts[1] x counts[2] cells, in integer lattice coordinates.

    Returns (lattice (V,3) int, faces (F,3)); welded, with unused vertices dropped. Normals point
    out of the box, or into it with `inward`. `is_hole` gets the cell centres (N,3), in lattice
    units, of one side and says which cells to leave out.
    """
    lattice_points, faces, vertex_count = [], [], 0
    for axis in range(3):
        # (axis, u, v) is a right-handed cyclic order, so u x v points along +axis.
        u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
        nu, nv = counts[u_axis], counts[v_axis]
        for side in (0, counts[axis]):
            grid_u, grid_v = np.meshgrid(np.arange(nu + 1), np.arange(nv + 1), indexing="ij")
            points = np.zeros(((nu + 1) * (nv + 1), 3), dtype=np.int64)
            points[:, axis], points[:, u_axis], points[:, v_axis] = side, grid_u.ravel(), grid_v.ravel()

            cell_u, cell_v = (c.ravel() for c in np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij"))
            if is_hole is not None:
                centres = np.zeros((len(cell_u), 3))
                centres[:, axis], centres[:, u_axis], centres[:, v_axis] = side, cell_u + 0.5, cell_v + 0.5
                keep = ~is_hole(centres)
                cell_u, cell_v = cell_u[keep], cell_v[keep]
            c00 = cell_u * (nv + 1) + cell_v
            c10, c01 = c00 + (nv + 1), c00 + 1
            c11 = c10 + 1
            normal_along_axis = (side == counts[axis]) != inward
            if normal_along_axis:
                quads = [np.stack([c00, c10, c11], 1), np.stack([c00, c11, c01], 1)]
            else:
                quads = [np.stack([c00, c11, c10], 1), np.stack([c00, c01, c11], 1)]
            faces.append(np.concatenate(quads) + vertex_count)
            lattice_points.append(points)
            vertex_count += len(points)

    lattice_points = np.concatenate(lattice_points)
    faces = np.concatenate(faces)
    # Box edges are emitted by two sides and corners by three: weld them on exact lattice keys.
    unique_points, welded = np.unique(lattice_points, axis=0, return_inverse=True)
    faces = welded.reshape(-1)[faces]
    used, compact = np.unique(faces, return_inverse=True)
    return unique_points[used], compact.reshape(faces.shape)


def box_part(low: np.ndarray, high: np.ndarray, paint: Paint, step: float = FURNITURE_STEP,
             label: str = "") -> Part:
    """A closed, outward-facing box from corner `low` to corner `high`, quads about `step` wide."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    counts = tuple(int(n) for n in np.maximum(1, np.round((high - low) / step)))
    lattice, faces = lattice_box_surface(counts)
    vertices = low + lattice * ((high - low) / counts)
    return Part(vertices, faces, paint(vertices), label)


# ---------------------------------------------------------------------------------------------
# The room shell: floor, ceiling and walls facing inward, with openings

def _shell(rng: np.random.Generator) -> Part:
    counts = tuple(int(n) for n in np.round(ROOM_SIZE / SHELL_STEP))

    def is_opening(cell_centres: np.ndarray) -> np.ndarray:
        metres = cell_centres * SHELL_STEP
        hole = np.zeros(len(metres), dtype=bool)
        for opening in OPENINGS:
            wall_coordinate = ROOM_SIZE[opening.wall_axis] if opening.at_max else 0.0
            along = metres[:, 1 - opening.wall_axis]
            hole |= (np.isclose(metres[:, opening.wall_axis], wall_coordinate)
                     & (along > opening.along[0]) & (along < opening.along[1])
                     & (metres[:, 2] > opening.height[0]) & (metres[:, 2] < opening.height[1]))
        return hole

    lattice, faces = lattice_box_surface(counts, inward=True, is_hole=is_opening)
    vertices = lattice * SHELL_STEP
    on_floor, on_ceiling = lattice[:, 2] == 0, lattice[:, 2] == counts[2]
    on_wall = ~(on_floor | on_ceiling)

    colors = np.empty((len(vertices), 3), dtype=np.float32)
    colors[on_floor] = _floor_colors(vertices[on_floor], rng)
    colors[on_ceiling] = _ceiling_colors(vertices[on_ceiling], rng)
    colors[on_wall] = _wall_colors(vertices[on_wall], lattice[on_wall], counts, rng)
    return Part(vertices, faces, colors)


def _floor_colors(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Oak planks running along y, a checker-tiled entry by the door, a patterned rug."""
    colors = wood(points, grain_axis=1, across_axis=0, plank_width=0.20, base=(0.62, 0.42, 0.24),
                  rng=rng, plank_length=1.20)
    x, y = points[:, 0], points[:, 1]

    entry = (x < 1.0) & (y < 1.8)
    checker = ((np.floor(x[entry] / 0.25 + 1e-6) + np.floor(y[entry] / 0.25 + 1e-6)) % 2).astype(bool)
    colors[entry] = np.where(checker[:, None], [0.12, 0.12, 0.14], [0.90, 0.88, 0.82])

    rug_low, rug_high = np.array([1.30, 1.50]), np.array([2.90, 3.30])
    on_rug = np.all((points[:, :2] >= rug_low) & (points[:, :2] <= rug_high), axis=1)
    colors[on_rug] = _rug_colors(points[on_rug, :2] - rug_low, rug_high - rug_low, rng)
    return colors * (1 + 0.05 * smooth_noise(points, rng, scale=0.6))[:, None]


def _rug_colors(local: np.ndarray, size: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A kilim-like rug: dark red border, navy field with a lattice of cream diamonds."""
    border_red, field_navy, cream, ochre = (np.array(c) for c in
                                            ([0.55, 0.10, 0.10], [0.10, 0.14, 0.35],
                                             [0.92, 0.86, 0.70], [0.85, 0.60, 0.15]))
    to_edge = np.minimum(local, size - local).min(axis=1)
    centred = local - size / 2
    diamond = (np.abs(centred[:, 0]) + np.abs(centred[:, 1])) / 0.30
    ring = np.abs(diamond - np.round(diamond)) < 0.2
    colors = np.where(ring[:, None], cream, field_navy)
    colors = np.where((np.round(diamond) % 3 == 0)[:, None] & ring[:, None], ochre, colors)
    colors = np.where((to_edge < 0.16)[:, None], border_red, colors)
    colors = np.where(((to_edge > 0.06) & (to_edge < 0.11))[:, None], cream, colors)
    return colors * (1 + 0.06 * smooth_noise(local, rng, scale=0.15))[:, None]


def _ceiling_colors(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tint = np.array([0.93, 0.92, 0.88])
    return tint * (1 + 0.03 * smooth_noise(points, rng, scale=0.8))[:, None]


WALL_PAINTS = np.array([
    [0.80, 0.76, 0.62],   # west: warm sand
    [0.55, 0.66, 0.56],   # east: sage
    [0.86, 0.84, 0.78],   # south: chalk white above the tiles
    [0.45, 0.58, 0.72],   # north: dusty blue
])


def _wall_colors(points: np.ndarray, lattice: np.ndarray, counts: tuple[int, int, int],
                 rng: np.random.Generator) -> np.ndarray:
    """Painted walls with a white skirting board; the south wall is tiled up to 1.2 m."""
    wall_index = np.select([lattice[:, 0] == 0, lattice[:, 0] == counts[0], lattice[:, 1] == 0],
                           [0, 1, 2], default=3)
    paints = WALL_PAINTS * rng.uniform(0.92, 1.05, size=(4, 1))
    colors = paints[wall_index] * (1 + 0.04 * smooth_noise(points, rng, scale=0.5))[:, None]

    # 20 cm tiles on a 5 cm lattice: every fourth vertex row is grout.
    tiled = (wall_index == 2) & (points[:, 2] <= 1.20 + 1e-6)
    tile_x, tile_z = points[tiled, 0] / 0.20, points[tiled, 2] / 0.20
    grout = (np.abs(tile_x - np.round(tile_x)) < 0.1) | (np.abs(tile_z - np.round(tile_z)) < 0.1)
    tile_tone = np.where((np.floor(tile_x + 1e-6) + np.floor(tile_z + 1e-6)) % 2 == 0, 1.0, 0.8)
    tile_color = np.array([0.20, 0.50, 0.62]) * tile_tone[:, None]
    colors[tiled] = np.where(grout[:, None], [0.88, 0.88, 0.85], tile_color)

    colors[points[:, 2] <= 0.10 + 1e-6] = [0.95, 0.94, 0.90]
    return colors


def wood(points: np.ndarray, grain_axis: int, across_axis: int, plank_width: float,
         base: tuple[float, float, float], rng: np.random.Generator,
         plank_length: float | None = None) -> np.ndarray:
    """Planks side by side across `across_axis`, each its own tone, wavy grain, dark joints.

    Joints only show where they fall on vertices, so plank sizes should be multiples of the
    tessellation step; `plank_length` adds staggered end joints (floors).
    """
    across, along = points[:, across_axis], points[:, grain_axis]
    plank = np.floor(across / plank_width + 1e-6).astype(int)
    plank_tones = rng.normal(0, 0.10, size=256)
    tone = 1 + plank_tones[plank % 256]
    grain_points = np.stack([along / 8.0, across], axis=1)
    grain = 0.07 * np.sin(2 * np.pi * across / 0.1 + 4 * smooth_noise(grain_points, rng, scale=0.1))
    colors = np.asarray(base) * (tone + grain)[:, None]

    offset = across / plank_width - plank
    joint = np.minimum(offset, 1 - offset) * plank_width < 0.012
    if plank_length is not None:
        stagger = rng.integers(0, 24, size=256) * 0.05
        end_offset = np.mod(along + stagger[plank % 256], plank_length)
        joint |= np.minimum(end_offset, plank_length - end_offset) < 0.012
    colors[joint] *= 0.55
    return colors


# ---------------------------------------------------------------------------------------------
# Furniture: closed boxes with outward normals; each group jitters as a whole with the seed

def _jitter(rng: np.random.Generator, axes: tuple[int, ...]) -> np.ndarray:
    shift = np.zeros(3)
    shift[list(axes)] = rng.uniform(-JITTER_M, JITTER_M, size=len(axes))
    return shift


def _sofa(rng: np.random.Generator) -> list[Part]:
    """A sofa against the east wall: seat block, backrest and two arms."""
    shift = _jitter(rng, axes=(1,))
    fabric = np.array([0.12, 0.38, 0.40]) * rng.uniform(0.9, 1.1)

    def upholstery(points: np.ndarray) -> np.ndarray:
        # Three cushions: seams across y, where the quads happen to sit on them.
        cushion = np.abs(((points[:, 1] - shift[1] - 1.40) / (2.0 / 3)) % 1 - 0.5) > 0.47
        colors = fabric * (1 + 0.08 * smooth_noise(points, rng, scale=0.12))[:, None]
        colors[cushion] *= 0.6
        return colors

    def arm_fabric(points: np.ndarray) -> np.ndarray:
        return fabric * 0.85 * (1 + 0.08 * smooth_noise(points, rng, scale=0.12))[:, None]

    # Arms stick out 2 cm past the seat and 2 cm wider, the backrest 1 cm further back, so that
    # no two pieces share a visible plane.
    pieces = [((3.05, 1.40, 0.00), (3.94, 3.40, 0.42), upholstery),          # seat
              ((3.70, 1.40, 0.41), (3.96, 3.40, 0.86), upholstery),          # backrest
              ((3.03, 1.38, 0.00), (3.95, 1.60, 0.62), arm_fabric),          # arm, south
              ((3.03, 3.20, 0.00), (3.95, 3.42, 0.62), arm_fabric)]          # arm, north
    return [box_part(np.add(low, shift), np.add(high, shift), paint, label="sofa") for low, high, paint in pieces]


def _dining_set(rng: np.random.Generator) -> list[Part]:
    """A walnut table in the north-west with two chairs on its south side."""
    shift = _jitter(rng, axes=(0, 1))
    table_low, table_high = np.array([0.40, 3.40]), np.array([1.80, 4.30])

    def walnut(points: np.ndarray) -> np.ndarray:
        return wood(points, grain_axis=0, across_axis=1, plank_width=0.16, base=(0.45, 0.28, 0.16), rng=rng)

    def beech(points: np.ndarray) -> np.ndarray:
        return wood(points, grain_axis=2, across_axis=0, plank_width=0.12, base=(0.78, 0.60, 0.40), rng=rng)

    parts = [box_part(np.r_[table_low, 0.72] + shift, np.r_[table_high, 0.77] + shift, walnut, label="table")]
    for leg_x in (table_low[0] + 0.05, table_high[0] - 0.11):
        for leg_y in (table_low[1] + 0.05, table_high[1] - 0.11):
            parts.append(box_part(np.r_[leg_x, leg_y, 0.0] + shift, np.r_[leg_x + 0.06, leg_y + 0.06, 0.725] + shift,
                                  walnut, label="table"))
    for chair_x in (0.55, 1.25):
        parts += _chair(np.array([chair_x, 2.85, 0.0]) + shift, beech)
    return parts


def _chair(corner: np.ndarray, paint: Paint) -> list[Part]:
    """A 44 cm chair facing +y whose seat's south-west bottom corner is `corner`."""
    pieces = [((0.00, 0.000, 0.43), (0.44, 0.44, 0.47)),        # seat
              ((0.01, -0.005, 0.46), (0.43, 0.03, 0.92))]      # backrest, 5 mm behind the seat
    for leg_x in (0.02, 0.38):
        for leg_y in (0.02, 0.38):
            pieces.append(((leg_x, leg_y, 0.0), (leg_x + 0.04, leg_y + 0.04, 0.435)))
    return [box_part(corner + low, corner + high, paint, label="chair") for low, high in pieces]


def _box_stack(rng: np.random.Generator) -> list[Part]:
    """Two cardboard boxes stacked in the south-east corner, taped across the top."""
    shift = _jitter(rng, axes=(0, 1))
    cardboard = np.array([0.72, 0.55, 0.35])

    def taped_cardboard(box_low: np.ndarray, box_high: np.ndarray) -> Paint:
        def paint(points: np.ndarray) -> np.ndarray:
            colors = cardboard * (1 + 0.06 * smooth_noise(points, rng, scale=0.2))[:, None]
            centre_x = 0.5 * (box_low[0] + box_high[0])
            tape = (np.abs(points[:, 0] - centre_x) < 0.05) & (points[:, 2] > box_high[2] - 0.15)
            colors[tape] = [0.82, 0.78, 0.66]
            return colors
        return paint

    boxes = [(np.array([3.25, 0.20, 0.00]), np.array([3.85, 0.70, 0.45])),
             (np.array([3.32, 0.25, 0.44]), np.array([3.77, 0.65, 0.79]))]
    return [box_part(low + shift, high + shift, taped_cardboard(low + shift, high + shift), label="box")
            for low, high in boxes]


def _ball(rng: np.random.Generator) -> Part:
    """A beach ball on the floor: six coloured gores and white caps."""
    radius = 0.30
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    centre = np.array([2.70, 0.55, radius]) + _jitter(rng, axes=(0, 1))
    local = np.asarray(sphere.vertices)
    gores = np.array([[0.85, 0.12, 0.10], [0.97, 0.97, 0.95], [0.10, 0.30, 0.75],
                      [0.97, 0.80, 0.10], [0.97, 0.97, 0.95], [0.15, 0.60, 0.25]])
    gore = (np.floor((np.arctan2(local[:, 1], local[:, 0]) + np.pi) / (2 * np.pi) * 6).astype(int)) % 6
    colors = gores[gore]
    colors[np.abs(local[:, 2]) > 0.9 * radius] = [0.97, 0.97, 0.95]
    colors = colors * (1 + 0.03 * smooth_noise(local, rng, scale=0.2))[:, None]
    return Part(local + centre, np.asarray(sphere.faces, dtype=np.int64), colors.astype(np.float32), "ball")
