"""Unwrap, rasterize and bake timings with the atlas figures, for demo-room and the redkitchen scan.

    .venv/bin/python scripts/bench_atlas.py [--sizes 2048 4096] [--scenes demo-room redkitchen]

Unwrapping uses a fresh cache folder, so every size is really unwrapped (the gutter is in texels, so
each size is its own atlas). The projected-charts fallback is timed too, for comparison.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REDKITCHEN = Path("/work/shared/scans/redkitchen/redkitchen_fused.ply")


def timed(label: str, action):
    started = time.perf_counter()
    value = action()
    print(f"  {label:<34} {time.perf_counter() - started:7.2f} s", flush=True)
    return value


def load(name: str):
    if name == "redkitchen":
        import open3d as o3d
        import trimesh

        from meshstyle.inputs.meshes import load_mesh_file

        timed("read PLY, trimesh", lambda: trimesh.load(REDKITCHEN, process=False))
        timed("read PLY, open3d", lambda: o3d.io.read_triangle_mesh(str(REDKITCHEN)))
        return timed("load_mesh_file (clean, weld, kind)", lambda: load_mesh_file(REDKITCHEN))
    import scenes

    return timed(f"build {name}", lambda: scenes.build(name))


def bench(name: str, sizes: list[int]) -> None:
    from meshstyle.atlas.unwrap import (atlas_info, bake_texture, make_atlas, project_charts, rasterize_atlas,
                                 split_to_manifold)
    from meshstyle.config import SceneConfig
    from meshstyle.inputs.textured import read_textured
    from meshstyle.outputs.export import write_glb, write_obj
    from meshstyle.geometry.scene import TexturedMesh

    print(f"{name}:")
    scene = load(name)
    print(f"  {len(scene.faces)} faces, {len(scene.vertices)} vertices, kind {scene.kind}")
    for size in sizes:
        atlas = timed(f"make_atlas {size} (unwrap)", lambda: make_atlas(scene, size, SceneConfig(reunwrap=True)))
        print(f"  atlas {size}: {atlas_info(atlas)}")
        face_id, _ = timed(f"rasterize_atlas {size}", lambda: rasterize_atlas(atlas.uv, size))
        del face_id
        texture = timed(f"bake_texture {size}", lambda: bake_texture(scene, atlas, size))
        assert np.isfinite(texture).all()
        mesh = TexturedMesh(scene.vertices, scene.faces, atlas.uv, texture)
        with tempfile.TemporaryDirectory(prefix="bench-export-") as out:
            timed(f"write_glb {size}", lambda: write_glb(mesh, Path(out) / "mesh.glb"))
            timed(f"write_obj {size}", lambda: write_obj(mesh, Path(out) / "mesh.obj"))
            timed(f"read_textured GLB {size}", lambda: read_textured(Path(out) / "mesh.glb"))
        faces, source = split_to_manifold(scene.faces)
        uv = timed(f"projected charts {size} (fallback)", lambda: project_charts(scene.vertices[source], faces, size))
        face_id, _ = rasterize_atlas(uv, size)
        print(f"  fallback {size}: utilisation {(face_id >= 0).mean():.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--scenes", nargs="+", default=["demo-room", "redkitchen"])
    args = parser.parse_args()
    os.environ.setdefault("MESHSTYLE_QUIET", "1")
    with tempfile.TemporaryDirectory(prefix="bench-atlas-") as cache:
        os.environ["MESHSTYLE_CACHE"] = cache     # measure unwrapping, not the cache
        print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
        for name in args.scenes:
            bench(name, args.sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
