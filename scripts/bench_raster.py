"""Rays per second of the Rasterizer (full Fragments) against a bare open3d `cast_rays` on the same rays.

    .venv/bin/python scripts/bench_raster.py [--views 20] [--width 640] [--height 480]

Scene: the built-in demo room when it exists, else a dense box room with spheres as furniture.
Cameras: a walkthrough of the room. The UV is a cheap planar projection: the cost of shading does
not depend on the UV values, and an atlas would only add minutes of unwrapping to a benchmark.
Target: ours >= 0.5 x bare.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def bench_scene():
    try:
        import scenes

        return scenes.demo_room(), "demo-room"
    except (ImportError, AttributeError):
        return dense_room(), "dense test room"


def dense_room():
    """A 4x5x2.7 m room (inward normals) subdivided to ~100k faces, with sphere 'furniture'."""
    import trimesh

    from meshstyle.geometry.scene import Scene

    room = trimesh.creation.box(extents=(4.0, 5.0, 2.7))
    room.apply_translation((2.0, 2.5, 1.35))
    room.invert()
    for _ in range(5):
        room = room.subdivide()
    parts = [room]
    for centre in ((1.0, 1.0, 0.5), (3.0, 4.0, 0.6), (3.2, 1.2, 0.4)):
        ball = trimesh.creation.icosphere(subdivisions=5, radius=0.45)
        ball.apply_translation(centre)
        parts.append(ball)
    mesh = trimesh.util.concatenate(parts)
    return Scene(name="dense-room", vertices=np.asarray(mesh.vertices), faces=np.asarray(mesh.faces), kind="room")


def main() -> None:
    from meshstyle.common.allocator import tune_allocator

    tune_allocator()  # as the CLI does: warm heap pages for per-view arrays
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    args = parser.parse_args()
    os.environ.setdefault("MESHSTYLE_QUIET", "1")
    torch.set_num_threads(2)

    import open3d.core as o3c

    from meshstyle.views.cameras import walkthrough
    from meshstyle.raster.rasterizer import Rasterizer, camera_rays

    scene, name = bench_scene()
    uv = (scene.vertices[scene.faces][..., :2] / np.ptp(scene.vertices[:, :2], axis=0)).astype(np.float32)
    rasterizer = Rasterizer(scene.vertices, scene.faces, uv)
    cameras = walkthrough(scene, args.views, np.random.default_rng(0), width=args.width, height=args.height)
    view_rays = [np.concatenate([np.broadcast_to(c.center, (c.width * c.height, 3)), camera_rays(c)], axis=1)
                 .astype(np.float32) for c in cameras]
    per_view_tensors = [o3c.Tensor.from_numpy(rays) for rays in view_rays]
    all_rays_tensor = o3c.Tensor.from_numpy(np.concatenate(view_rays))
    embree = rasterizer._embree()                          # build the Embree scene outside the timings
    total = sum(len(rays) for rays in view_rays)

    variants = {
        "bare_one_call": lambda: embree.cast_rays(all_rays_tensor),
        "bare_per_view": lambda: [embree.cast_rays(rays) for rays in per_view_tensors],
        "ours_batched": lambda: rasterizer.render_many(cameras),
        "ours_single": lambda: [rasterizer(camera) for camera in cameras],
    }
    # Interleaved repeats, best of each: the machine is shared, so load drifts between runs.
    seconds = {name: [] for name in variants}
    for _ in range(args.repeats):
        for variant, run in variants.items():
            start = time.perf_counter()
            run()
            seconds[variant].append(time.perf_counter() - start)
    bare_one_call, bare_per_view, ours_batched, ours_single = (min(seconds[variant]) for variant in variants)
    bare = min(bare_one_call, bare_per_view)      # compare against the faster way of calling it
    coverage = float(np.mean([f.mask.float().mean().item() for f in rasterizer.render_many(cameras)]))
    print(f"scene {name}: {len(scene.faces)} faces; {len(cameras)} views at {args.width}x{args.height} "
          f"({total / 1e6:.2f} M rays, coverage {coverage:.3f}); threads: 2 torch, open3d all")
    print(f"bare cast_rays, one call {total / bare_one_call / 1e6:6.2f} M rays/s  ({bare_one_call:.3f} s)")
    print(f"bare cast_rays, per view {total / bare_per_view / 1e6:6.2f} M rays/s  ({bare_per_view:.3f} s)")
    print(f"Rasterizer.render_many   {total / ours_batched / 1e6:6.2f} M rays/s  ({ours_batched:.3f} s)  "
          f"ratio {bare / ours_batched:.2f} of the faster bare")
    print(f"Rasterizer per camera    {total / ours_single / 1e6:6.2f} M rays/s  ({ours_single:.3f} s)  "
          f"ratio {bare / ours_single:.2f} of the faster bare")


if __name__ == "__main__":
    main()
