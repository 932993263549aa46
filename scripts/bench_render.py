"""Rendering speed against bare ray casting, on demo-room along a walkthrough (the README figure).

    .venv/bin/python scripts/bench_render.py [--frames 24] [--size 640x480] [--texture 1024] [--rounds 3]

The bare rate is open3d's `cast_rays` alone on the very rays the renderer casts (same cameras, one
view per call as `Rasterizer` groups views of this size), timed without building the rays. The
renderer's rates cover everything from camera to finished float image: rays, casting, the hit on
each pixel's face, UV / footprint / angle, mip-mapped lookup and background. Three renders:
without the disk cache; as a first `meshstyle render` does it, writing every view's face ids to an
emptied cache; and again over the same trajectory, reading them from the cache. Rounds alternate
bare and rendered passes and the median is reported, because other work on a shared 2-core
machine moves single timings by tens of percent.
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def main() -> int:
    from meshstyle.common.allocator import tune_allocator

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

    import open3d.core as o3c
    import open3d.t.geometry as o3dt

    from meshstyle.atlas.unwrap import bake_texture, make_atlas
    from meshstyle.views.cameras import walkthrough
    from meshstyle.raster.rasterizer import write_camera_rays
    from meshstyle.outputs.render import ViewRenderer
    from meshstyle.geometry.scene import TexturedMesh
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
        render_pass(uncached)                                      # warm-up: BVH, allocator, kernels
        cached = ViewRenderer(mesh, cache_dir=os.path.join(cache_root, "kept"))
        render_pass(cached)                                        # fills the cache
        # A first render as the CLI does it: every view misses and is written to the cache, which
        # is emptied before each of these passes.
        writer_root = os.path.join(cache_root, "emptied")
        writer = ViewRenderer(mesh, cache_dir=writer_root)
        bare, rendered, writing, from_cache = [], [], [], []
        for _ in range(args.rounds):
            bare.append(bare_pass())
            rendered.append(render_pass(uncached))
            for entry in glob.glob(os.path.join(writer_root, "render", "*.npy")):
                os.remove(entry)
            writing.append(render_pass(writer))
            from_cache.append(render_pass(cached))
        assert cached.cache_misses == args.frames and cached.cache_hits == args.frames * args.rounds
        assert writer.cache_misses == args.frames * args.rounds and writer.cache_hits == 0

    bare_s = statistics.median(bare)
    print(f"demo-room: {len(mesh.faces)} triangles, {args.texture}^2 texture, walkthrough of {args.frames} "
          f"frames at {width}x{height}, median of {args.rounds} rounds")
    print(f"bare cast_rays        : {args.frames / bare_s:7.1f} fps  {rays_per_pass / bare_s / 1e6:6.2f} M rays/s")
    for label, times in (("render", rendered), ("render, writing cache", writing), ("render from cache", from_cache)):
        seconds = statistics.median(times)
        print(f"{label:22s}: {args.frames / seconds:7.1f} fps  {rays_per_pass / seconds / 1e6:6.2f} M rays/s"
              f"  ratio {bare_s / seconds:.2f} of bare")
    return 0


if __name__ == "__main__":
    sys.exit(main())
