"""Per-face quantities of a triangle mesh, written once."""
from __future__ import annotations

import numpy as np


def corner_cross(corners: np.ndarray) -> np.ndarray:
    """(F,3,3) triangle corners -> (F,3) cross product of the edges from corner 0: the face normal
    (counter-clockwise winding), with length twice the face's area."""
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    return 0.5 * np.linalg.norm(corner_cross(corners), axis=1)
