"""demo-object: a sculpted blob about 1 m across, with painted bands, z-up.

The blob is an icosphere pushed in and out along its radii by smooth noise. A radial graph over
the sphere cannot fold onto itself, so the surface stays closed, edge-manifold and free of
self-intersections whatever the seed. It is genus 0 on purpose: open3d's UVAtlas unwraps a 20k
triangle sphere-like mesh in a few seconds but spends about a minute of CPU on a torus of the same
size (measured), and the atlas is on every run's path. This module also holds the smooth noise
that both built-in scenes use for colours and relief.
"""
from __future__ import annotations

import numpy as np
import trimesh

from meshstyle.geometry.scene import Appearance, Scene

SUBDIVISIONS = 5              # 20480 triangles, about 1.3 cm edges at 1 m
OBJECT_SIZE_M = 1.0

BAND_PALETTE = np.array([
    [0.85, 0.35, 0.15],   # terracotta
    [0.95, 0.75, 0.30],   # ochre
    [0.20, 0.45, 0.55],   # teal
    [0.90, 0.88, 0.80],   # bone
], dtype=np.float32)


def smooth_noise(points: np.ndarray, rng: np.random.Generator, scale: float, waves: int = 24) -> np.ndarray:
    """Band-limited random field over points (N,D): mean 0, standard deviation about 1.

    A sum of random plane waves whose wavelengths lie around `scale` (same units as points);
    it is smooth, cheap for any number of points, and fully determined by `rng`.
    """
    points = np.asarray(points, dtype=np.float64)
    directions = rng.normal(size=(waves, points.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequencies = 2 * np.pi / scale * rng.uniform(0.6, 1.6, size=(waves, 1))
    phases = rng.uniform(0, 2 * np.pi, size=waves)
    return np.sqrt(2.0 / waves) * np.cos(points @ (directions * frequencies).T + phases).sum(axis=1)


def demo_object(seed: int = 0) -> Scene:
    """A closed, lumpy blob centred at the origin, ~1 m across, with banded vertex colours."""
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=SUBDIVISIONS, radius=1.0)
    directions = np.asarray(sphere.vertices)
    # Broad lobes, then smaller bumps; tanh bounds the radius to [0.45, 1.55], always positive.
    relief = 0.30 * smooth_noise(directions, rng, scale=2.5) + 0.10 * smooth_noise(directions, rng, scale=0.8)
    vertices = directions * (1.0 + 0.55 * np.tanh(relief / 0.55))[:, None]

    vertices -= 0.5 * (vertices.min(0) + vertices.max(0))
    vertices *= OBJECT_SIZE_M / np.ptp(vertices, axis=0).max()
    colors = _band_colors(vertices, rng)
    # icosphere faces wind counter-clockwise seen from outside; radial scaling keeps that.
    return Scene(name="demo-object", vertices=vertices, faces=np.asarray(sphere.faces, dtype=np.int64),
                 appearance=Appearance(vertex_colors=colors), kind="object", up=(0.0, 0.0, 1.0),
                 source="built-in:demo-object")


def _band_colors(vertices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Wavy bands across a tilted axis from a small palette, dark pin-stripes between, mottled."""
    axis = np.array([0.3, -0.2, 1.0]) + rng.normal(0, 0.15, size=3)
    axis /= np.linalg.norm(axis)
    height = vertices @ axis + 0.05 * smooth_noise(vertices, rng, scale=0.5)
    band_width = 0.12
    band = np.floor(height / band_width).astype(int)
    band_order = rng.permutation(np.resize(np.arange(len(BAND_PALETTE)), 16))
    colors = BAND_PALETTE[band_order[band % 16]].copy()
    # Dark pin-stripes hide the hard colour change at each band edge; their soft falloff spreads
    # over a couple of 1.3 cm edges, so they read as smooth lines rather than stair steps.
    offset = height / band_width - band
    to_edge_m = np.minimum(offset, 1 - offset) * band_width
    stripe = np.clip(1.0 - (to_edge_m - 0.008) / 0.015, 0.0, 1.0)[:, None]
    colors = (1 - stripe) * colors + stripe * (0.15 * colors + 0.05)
    mottling = 1.0 + 0.08 * smooth_noise(vertices, rng, scale=0.08)
    return np.clip(colors * mottling[:, None], 0, 1).astype(np.float32)
