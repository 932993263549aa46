"""Rendering speed against bare ray casting, on demo-room along a walkthrough (the README figure).

    .venv/bin/python scripts/bench_render.py [--frames 24] [--size 640x480] [--texture 1024] [--rounds 3]

The bare rate is open3d's `cast_rays` alone on the very rays the renderer casts (same cameras, one
view per call as `Rasterizer` groups views of this size), timed without building the rays. The renderer's rate covers everything
from camera to finished float image: rays, casting, UV / footprint / angle, mip-mapped lookup and
background. A second pass over the same trajectory reads the ray hits from the render cache.
Rounds alternate bare and rendered passes and the median is reported, because other work on a
shared 2-core machine moves single timings by tens of percent.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch


def main() -> int:
    from meshstyle.allocator import tune_allocator

    tune_allocator()  # as the CLI does: warm heap pages for per-view arrays
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="640x480", metavar="WxH")
    parser.add_argument("--texture", type=int, default=1024, help="atlas side in texels")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.lower().split("x"))
    os.environ.setdefault("MESHSTYLE_QUIET", "1")
    torch.set_num_threads(2)

    import open3d.core as o3c
    import open3d.t.geometry as o3dt

    from meshstyle.atlas import bake_texture, make_atlas
    from meshstyle.cameras import walkthrough
    from meshstyle.raster import write_camera_rays
    from meshstyle.render import ViewRenderer
    from meshstyle.scene import TexturedMesh
    from scenes.room import demo_room

    scene = demo_room()
    atlas = make_atlas(scene, args.texture)
    mesh = TexturedMesh(scene.vertices, scene.faces, atlas.uv, bake_texture(scene, atlas, args.texture))
    cameras = walkthrough(scene, args.frames, np.random.default_rng(args.seed), width=width, height=height)
    rays_per_pass = args.frames * width * height

    # Every view's (H*W,6) rays as open3d tensors, built ahead of the timing.
    embree = o3dt.RaycastingScene()
    embree.add_triangles(o3c.Tensor.from_numpy(mesh.vertices.astype(np.float32)),
                         o3c.Tensor.from_numpy(mesh.faces.astype(np.uint32)))
    batches = []
    for camera in cameras:
        rays = np.empty((camera.width * camera.height, 6), dtype=np.float32)
        write_camera_rays(camera, rays)
        batches.append(o3c.Tensor.from_numpy(rays))
    embree.cast_rays(batches[0])   # first call pays Embree's BVH build

    def bare_pass() -> float:
        started = time.perf_counter()
        for rays in batches:
            embree.cast_rays(rays)
        return time.perf_counter() - started

    def render_pass(renderer: ViewRenderer) -> float:
        started = time.perf_counter()
        for _ in renderer.render(cameras):
            pass
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory() as cache_root:
        uncached = ViewRenderer(mesh, cache=False)
        render_pass(ViewRenderer(mesh, cache=False, cache_dir=cache_root))   # warm-up: BVH, allocator
        cached = ViewRenderer(mesh, cache_dir=cache_root)
        render_pass(cached)                                                  # fills the cache
        bare, rendered, from_cache = [], [], []
        for _ in range(args.rounds):
            bare.append(bare_pass())
            rendered.append(render_pass(uncached))
            from_cache.append(render_pass(cached))
        assert cached.cache_misses == args.frames and cached.cache_hits == args.frames * args.rounds

    bare_s, render_s, cache_s = (statistics.median(times) for times in (bare, rendered, from_cache))
    print(f"demo-room: {len(mesh.faces)} triangles, {args.texture}^2 texture, walkthrough of {args.frames} "
          f"frames at {width}x{height}, torch threads {torch.get_num_threads()}, median of {args.rounds} rounds")
    print(f"bare cast_rays : {args.frames / bare_s:7.1f} fps  {rays_per_pass / bare_s / 1e6:6.2f} M rays/s")
    print(f"render         : {args.frames / render_s:7.1f} fps  {rays_per_pass / render_s / 1e6:6.2f} M rays/s"
          f"  ratio {bare_s / render_s:.2f} of bare")
    print(f"render (cached): {args.frames / cache_s:7.1f} fps  {rays_per_pass / cache_s / 1e6:6.2f} M rays/s"
          f"  ratio {bare_s / cache_s:.2f} of bare")
    return 0


if __name__ == "__main__":
    sys.exit(main())
