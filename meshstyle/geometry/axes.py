"""World axes: our up vector (+z for generated scenes and scans) against glTF's +y."""
from __future__ import annotations

import numpy as np

GLTF_UP = np.array([0.0, 1.0, 0.0])
Z_UP = (0.0, 0.0, 1.0)


def up_to_gltf(up: tuple[float, float, float]) -> np.ndarray:
    """4x4 rotation taking our `up` axis to glTF's +y (rotation about their common perpendicular)."""
    source = np.asarray(up, dtype=np.float64)
    source /= np.linalg.norm(source)
    axis = np.cross(source, GLTF_UP)
    sine, cosine = np.linalg.norm(axis), float(source @ GLTF_UP)
    rotation = np.eye(3)
    if sine < 1e-12:
        if cosine < 0:  # upside down: half a turn about x
            rotation = np.diag([1.0, -1.0, -1.0])
    else:
        k = axis / sine
        cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rotation = np.eye(3) + sine * cross + (1 - cosine) * cross @ cross
    rotation[np.abs(rotation) < 1e-12] = 0.0  # exact zeros keep axis-aligned rotations lossless
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    return matrix
