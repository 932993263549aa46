"""Is the unwrapper deterministic, and how good is its atlas? Three unwraps of the same meshes.

    .venv/bin/python scripts/bench_unwrap.py xatlas|uvatlas [--size 512]

Prints per unwrap: a hash of the UVs (equal hashes = bit-identical atlases), charts, share of
texels used and seconds (uvatlas runs in its child process, open3d's import included). Run it
twice to compare across processes; OMP_NUM_THREADS=1 to rule out threads (docs/TRAPS.md).
"""
from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np
import trimesh

from meshstyle.atlas import unwrap as U


def meshes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    bumpy = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    rng = np.random.default_rng(0)
    v = bumpy.vertices
    v = v * (1 + 0.05 * np.sin(7 * v[:, :1]) * np.cos(5 * v[:, 1:2]) + 0.01 * rng.standard_normal((len(v), 1)))
    return {"icosphere": (np.asarray(ball.vertices, float), np.asarray(ball.faces)),
            "bumpy sphere": (v, np.asarray(bumpy.faces))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=["xatlas", "uvatlas"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, (vertices, faces) in meshes().items():
        manifold, source = U.split_to_manifold(faces)
        for repeat in range(args.repeats):
            started = time.perf_counter()
            uv = U._unwrap_in_child(args.method, vertices[source], manifold, args.size)
            seconds = time.perf_counter() - started
            face_id, _ = U.rasterize_atlas(uv, args.size)
            print(f"{args.method} {name:13s} {len(faces):6d} faces  #{repeat}  uv {hashlib.sha1(uv.tobytes()).hexdigest()[:10]}"
                  f"  {U.count_charts(uv):3d} charts  {(face_id >= 0).mean():.1%} used  {seconds:.2f} s", flush=True)


if __name__ == "__main__":
    main()
