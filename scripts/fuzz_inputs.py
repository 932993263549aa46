"""Throw a catalogue of broken inputs at the real CLI and check every promise of README "Reliability".

    .venv/bin/python scripts/fuzz_inputs.py [--only SUBSTRING] [--group GROUP ...] [--list]

Cases: broken meshes, images, scan folders, configs, run folders and output paths, plus a few
valid-but-unusual inputs that must work (CMYK/palette/16-bit/grey+alpha styles). Each case runs
`python -m meshstyle ...` in a fresh folder and passes when it either
  - exits 2 with exactly one error line (warnings aside), no traceback, and leaves no output
    (no run folder, no frames, no export), or
  - is allowed to succeed, exits 0, and its result checks out.
Anything else (exit 1, a crash, a traceback, a hang, several lines, partial output) fails.
One row per case, then the totals; exit status 1 if any case failed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--iters", "1", "--views", "2", "--texture-size", "64", "--image-height", "32", "--set", "cameras.holdout=0",
        "--set", "loss.style_size=64", "--set", "loss.style_scales=1.0", "--set", "raster.levels=1"]
TETRA = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"


@dataclass
class Case:
    name: str
    group: str
    args: Callable[[Path], list]              # the CLI arguments, given the case's folder
    setup: Callable[[Path], None] = lambda d: None
    may_succeed: bool = False                 # exit 0 allowed (then `check` must hold)
    check: Callable[[Path], str | None] = lambda d: None   # None when the result is right
    outputs: tuple[str, ...] = ("out", "frames", "export.glb", "export.obj")   # must not appear on exit 2
    timeout: float = 300
    check_on_error: bool = False              # `check` also applies to an exit 2 (e.g. "no payload ran")


# --------------------------------------------------------------------------- file makers


def write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def png16(path: Path, rgb: np.ndarray) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    h, w, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[r].astype(">u2").tobytes() for r in range(h))
    write(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
          + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    write(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
          + chunk(b"IEND", b""))


def pil_image(path: Path, mode: str, colour, size=(48, 32), **save) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, **save)


def box_bytes(file_type: str) -> bytes:
    import trimesh
    data = trimesh.creation.box(extents=(1.0, 0.8, 0.6)).export(file_type=file_type)
    return data if isinstance(data, bytes) else data.encode()


def textured_glb(path: Path) -> None:
    import trimesh

    from meshstyle.atlas.unwrap import project_charts
    from meshstyle.geometry.scene import TexturedMesh
    from meshstyle.outputs.export import write_glb
    box = trimesh.creation.box(extents=(1.0, 0.8, 0.6))
    v, f = np.asarray(box.vertices, float), np.asarray(box.faces, np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_glb(TexturedMesh(v, f, project_charts(v, f, 32), np.full((32, 32, 3), 0.5, np.float32)), path)


def run_folder(folder: Path, cameras=None, run=None) -> None:
    """A minimal run folder (textured GLB + run.json) for render/eval/export cases."""
    from meshstyle.views.cameras import intrinsics_from_fov, look_at
    textured_glb(folder / "stylized.glb")
    camera = {"K": intrinsics_from_fov(40, 30, 60).tolist(),
              "cam_to_world": look_at(np.array([2.0, 1.5, 1.0]), np.zeros(3)).tolist(), "width": 40, "height": 30}
    content = run if run is not None else {"scene": {"name": "box", "kind": "object", "up": [0, 0, 1]},
                                           "cameras": cameras if cameras is not None else [camera], "holdout": []}
    write(folder / "run.json", content if isinstance(content, str) else json.dumps(content))


def bad_camera(**patch):
    from meshstyle.views.cameras import intrinsics_from_fov, look_at
    camera = {"K": intrinsics_from_fov(40, 30, 60).tolist(),
              "cam_to_world": look_at(np.array([2.0, 1.5, 1.0]), np.zeros(3)).tolist(), "width": 40, "height": 30}
    camera.update(patch)
    return [camera]


def nerf_folder(d: Path, meta, images=True) -> None:
    write(d / "scan" / "room.ply", box_bytes("ply"))
    if images:
        pil_image(d / "scan" / "images" / "0.png", "RGB", (100, 120, 140), size=(40, 30))
    write(d / "scan" / "transforms.json", meta if isinstance(meta, str) else json.dumps(meta))


def style_result(expected_rgb) -> Callable[[Path], str | None]:
    """Exit 0 is right only when the run is complete and its style.png has the expected colour."""
    def check(d: Path) -> str | None:
        from meshstyle.common.io import read_image
        if not (d / "out" / "run.json").is_file():
            return "no run.json"
        mean = read_image(d / "out" / "style.png").reshape(-1, 3).mean(axis=0)
        if np.abs(mean - np.asarray(expected_rgb)).max() > 0.06:
            return f"style colour {np.round(mean, 2).tolist()} != {expected_rgb}"
        return None
    return check


def exists(name: str) -> Callable[[Path], str | None]:
    return lambda d: None if (d / name).exists() else f"{name} missing"


# --------------------------------------------------------------------------- the catalogue


def stylize_mesh(name: str) -> Callable[[Path], list]:
    return lambda d: ["stylize", d / name, "--style", "circles", "--out", d / "out", *TINY]


def stylize_style(name: str) -> Callable[[Path], list]:
    return lambda d: ["stylize", "demo-object", "--style", d / name, "--out", d / "out", *TINY]


def catalogue() -> list[Case]:
    cases: list[Case] = []

    def mesh(name: str, file: str, data, may_succeed: bool = False) -> None:
        cases.append(Case(name, "mesh", stylize_mesh(file), lambda d: write(d / file, data() if callable(data) else data),
                          may_succeed=may_succeed, check=exists("out/run.json")))

    mesh("empty obj", "m.obj", b"")
    mesh("whitespace obj", "m.obj", b"\n\n   \n")
    mesh("binary garbage obj", "m.obj", bytes(range(256)) * 8)
    mesh("ply named obj", "m.obj", lambda: box_bytes("ply"))
    mesh("glb named obj", "m.obj", lambda: box_bytes("glb"))
    mesh("stl named ply", "m.ply", lambda: box_bytes("stl"))
    mesh("png named ply", "m.ply", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    mesh("zip named glb", "m.glb", b"PK\x03\x04" + b"\0" * 64)
    mesh("obj truncated mid-face", "m.obj", TETRA[:-3])
    mesh("obj truncated mid-vertex", "m.obj", TETRA[:TETRA.index("v 0 0 1") + 5])
    mesh("obj face index out of range", "m.obj", TETRA + "f 1 2 99\n")
    mesh("obj face index zero", "m.obj", TETRA + "f 0 1 2\n")
    mesh("obj negative index out of range", "m.obj", TETRA + "f -1 -2 -9\n")
    mesh("obj face with text index", "m.obj", TETRA + "f a b c\n")
    mesh("obj vertices only", "m.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    mesh("obj lines only", "m.obj", "v 0 0 0\nv 1 0 0\nl 1 2\n")
    mesh("obj nan vertex", "m.obj", TETRA.replace("v 0 0 1", "v nan 0 1"))
    mesh("obj inf vertex", "m.obj", TETRA.replace("v 0 0 1", "v inf 0 1"))
    mesh("obj all faces degenerate", "m.obj", "v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\nf 3 2 1\n")
    mesh("obj bad texture coordinate ref", "m.obj", TETRA.replace("f 1 3 2", "f 1/5 3/5 2/5"))
    mesh("obj with nul bytes", "m.obj", TETRA.encode() + b"\0\0\0")
    mesh("obj huge coordinates", "m.obj", TETRA.replace("v 1 0 0", "v 1e300 0 0"), may_succeed=True)
    mesh("obj all vertices identical", "m.obj", "v 1 1 1\nv 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\nf 1 2 4\n")
    mesh("ply header only", "m.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n")
    mesh("ply bad header", "m.ply", "ply\nformat nonsense 9\nend_header\n")
    mesh("ply truncated binary", "m.ply", lambda: box_bytes("ply")[:-40])
    mesh("ply face index out of range", "m.ply",
         "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
         "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    mesh("ply nan vertices", "m.ply",
         "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
         "element face 1\nproperty list uchar int vertex_indices\nend_header\nnan 0 0\nnan 0 0\nnan 1 0\n3 0 1 2\n")
    mesh("ply point cloud", "m.ply",
         "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
         "end_header\n0 0 0\n1 0 0\n0 1 0\n")
    mesh("stl empty", "m.stl", b"")
    mesh("stl truncated binary", "m.stl", lambda: box_bytes("stl")[:150])
    mesh("off malformed", "m.off", "OFF\n3 1\n0 0 0\n")
    mesh("off counts wrong", "m.off", "OFF\n8 12 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    mesh("glb garbage", "m.glb", b"glTF" + b"\x02\0\0\0" + b"\xff" * 40)
    mesh("gltf invalid json", "m.gltf", "{ not json")
    mesh("gltf missing buffer", "m.gltf", json.dumps({
        "asset": {"version": "2.0"}, "buffers": [{"uri": "missing.bin", "byteLength": 36}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}], "nodes": [{"mesh": 0}],
        "scenes": [{"nodes": [0]}], "scene": 0}))
    mesh("unknown suffix", "m.fbx", "Kaydara FBX Binary")
    cases.append(Case("mesh path is a folder named .obj", "mesh", stylize_mesh("m.obj"),
                      lambda d: (d / "m.obj").mkdir()))
    cases.append(Case("missing mesh file", "mesh", stylize_mesh("nowhere.ply")))
    cases.append(Case("mesh is /dev/null", "mesh",
                      lambda d: ["stylize", "/dev/null", "--style", "circles", "--out", d / "out", *TINY]))

    def style(name: str, file: str, make, may_succeed: bool = False, expected=None) -> None:
        cases.append(Case(name, "image", stylize_style(file), lambda d: make(d / file), may_succeed=may_succeed,
                          check=style_result(expected) if expected else exists("out/run.json")))

    style("missing style", "s.png", lambda p: None)
    style("empty style", "s.png", lambda p: write(p, b""))
    style("text named png", "s.png", lambda p: write(p, "hello"))
    style("png signature only", "s.png", lambda p: write(p, b"\x89PNG\r\n\x1a\n"))
    style("truncated png", "s.png", lambda p: (pil_image(p, "RGB", (10, 200, 30), size=(128, 128)),
                                               write(p, p.read_bytes()[:60])))
    style("truncated jpeg", "s.jpg", lambda p: (pil_image(p, "RGB", (10, 200, 30), size=(256, 256)),
                                                write(p, p.read_bytes()[:300])))
    style("decompression bomb header", "s.png", lambda p: png_header_only(p, 200_000, 200_000))
    style("zero-width png header", "s.png", lambda p: png_header_only(p, 0, 10))
    style("svg file", "s.svg", lambda p: write(p, "<svg xmlns='http://www.w3.org/2000/svg'/>"))
    style("pdf bytes named jpg", "s.jpg", lambda p: write(p, b"%PDF-1.4\n%%EOF"))
    style("folder as style", "s.png", lambda p: p.mkdir())
    style("cmyk jpeg red", "s.jpg", lambda p: pil_image(p, "CMYK", (0, 255, 255, 0), quality=95),
          may_succeed=True, expected=[1, 0, 0])
    style("palette png with transparency", "s.png",
          lambda p: pil_image(p, "P", 0, transparency=0), may_succeed=True, expected=[1, 1, 1])
    style("16-bit rgb png", "s.png", lambda p: png16(p, np.full((32, 48, 3), (0, 65535, 0), np.uint16)),
          may_succeed=True, expected=[0, 1, 0])
    style("grey + alpha png", "s.png", lambda p: pil_image(p, "LA", (0, 255)), may_succeed=True,
          expected=[0, 0, 0])

    def scan(name: str, make) -> None:
        cases.append(Case(name, "scan", lambda d: ["stylize", d / "scan", "--style", "circles", "--out", d / "out",
                                                   *TINY], make))

    scan("empty scan folder", lambda d: (d / "scan").mkdir())
    scan("folder with only a mesh", lambda d: write(d / "scan" / "room.ply", box_bytes("ply")))
    scan("transforms.json invalid", lambda d: nerf_folder(d, "{"))
    scan("transforms.json frames not a list", lambda d: nerf_folder(d, {"frames": 3}))
    scan("transforms.json frame without file_path", lambda d: nerf_folder(d, {"camera_angle_x": 1, "frames": [{}]}))
    scan("transforms.json images missing", lambda d: nerf_folder(d, {"camera_angle_x": 1, "frames": [
        {"file_path": "images/9.png", "transform_matrix": np.eye(4).tolist()}]}, images=False))
    scan("transforms.json nan poses", lambda d: nerf_folder(d, {"camera_angle_x": 1, "frames": [
        {"file_path": "images/0.png", "transform_matrix": [[float("nan")] * 4] * 4}]}))
    scan("transforms.json no focal length", lambda d: nerf_folder(d, {"frames": [
        {"file_path": "images/0.png", "transform_matrix": np.eye(4).tolist()}]}))
    # Allowed (datasets share image folders), with a warning (tests/test_attack_inputs.py checks it).
    cases.append(Case("transforms.json outside its folder", "scan",
                      lambda d: ["stylize", d / "scan", "--style", "circles", "--out", d / "out", *TINY],
                      lambda d: (pil_image(d / "elsewhere" / "0.png", "RGB", (9, 9, 9)),
                                 nerf_folder(d, {"camera_angle_x": 1, "frames": [
                                     {"file_path": "../elsewhere/0.png", "transform_matrix": np.eye(4).tolist()}]})),
                      may_succeed=True, check=exists("out/run.json")))
    scan("scannet without intrinsics", lambda d: (write(d / "scan" / "x_vh_clean_2.ply", box_bytes("ply")),
         pil_image(d / "scan" / "color" / "0.jpg", "RGB", (1, 2, 3)), write(d / "scan" / "pose" / "0.txt", "1 0 0 0\n" * 4)))
    scan("scannet garbage pose", lambda d: (write(d / "scan" / "x_vh_clean_2.ply", box_bytes("ply")),
         pil_image(d / "scan" / "color" / "0.jpg", "RGB", (1, 2, 3)), write(d / "scan" / "pose" / "0.txt", "pose?"),
         write(d / "scan" / "intrinsic" / "intrinsic_color.txt", "500 0 20 0\n0 500 15 0\n0 0 1 0\n0 0 0 1\n")))
    scan("7-scenes without info.txt", lambda d: (write(d / "scan" / "mesh.ply", box_bytes("ply")),
         pil_image(d / "scan" / "seq-01" / "frame-000000.color.png", "RGB", (1, 2, 3)),
         write(d / "scan" / "seq-01" / "frame-000000.pose.txt", "1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")))

    bad_values = [["--iters", "-5"], ["--iters", "0"], ["--texture-size", "3"], ["--texture-size", "100000"],
                  ["--image-height", "0"], ["--image-height", "100000"], ["--views", "0"], ["--seed", "-1"],
                  ["--device", "tpu"], ["--set", "texture.pyramid_levels=0"], ["--set", "optim.lr=nan"],
                  ["--set", "optim.lr=-1"], ["--set", "loss.style_layers=relu9_9"], ["--set", "loss.statistic=bogus"],
                  ["--set", "raster.level_scale=0"], ["--set", "raster.levels=0"], ["--set", "cameras.kind=heli"],
                  ["--set", "cameras.min_coverage=2"], ["--set", "optim.precision=float8"],
                  ["--set", "loss.style_size=1"], ["--set", "no.such.key=1"], ["--set", "optim.iters"],
                  ["--set", "loss.depth_aware=maybe"], ["--set", "loss.style_scales=0"],
                  ["--set", "loss.content_target=video"], ["--set", "optim.views_per_step=-1"]]
    for values in bad_values:
        cases.append(Case(f"config {' '.join(values)}", "config",
                          lambda d, v=values: ["stylize", "demo-object", "--style", "circles", "--out", d / "out", *v]))
    for toml in ("[optim]\niters = -1\n", "[optim\n", "[texture]\nsize = 'big'\n", "[loss]\nstatistic = 3\n"):
        cases.append(Case(f"config file {toml.splitlines()[0]!r}", "config",
                          lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "out",
                                     "--config", d / "c.toml"], lambda d, t=toml: write(d / "c.toml", t)))
    cases.append(Case("config file missing", "config", lambda d: ["stylize", "demo-object", "--style", "circles",
                                                                  "--out", d / "out", "--config", d / "none.toml"]))

    for values in (["--fov", "0"], ["--fps", "0"], ["--supersample", "0"], ["--size", "16384x16384"],
                   ["--size", "0x10"], ["--frames", "0"], ["--video", "v.avi"], ["--background", "purple"],
                   ["--cameras", "nowhere.json"]):
        cases.append(Case(f"render {' '.join(values)}", "render",
                          lambda d, v=values: ["render", d / "run", "--out", d / "frames", *v],
                          lambda d: run_folder(d / "run")))
    cases.append(Case("render --out is a file", "render", lambda d: ["render", d / "run", "--out", d / "f.txt"],
                      lambda d: (run_folder(d / "run"), write(d / "f.txt", "x"))))
    for label, run in (("no run.json", None), ("invalid run.json", "{"), ("run.json list", "[]"),
                       ("zero focal camera", {"cameras": bad_camera(K=[[0, 0, 1], [0, 0, 1], [0, 0, 1]])}),
                       ("nan pose camera", {"cameras": bad_camera(cam_to_world=[[float("nan")] * 4] * 4)}),
                       ("huge camera", {"cameras": bad_camera(width=10**7)}),
                       ("zero up axis", {"scene": {"up": [0, 0, 0]}, "cameras": []})):
        def make(d, r=run, has=label != "no run.json"):
            run_folder(d / "run", run=r if r is not None else {})
            if not has:
                (d / "run" / "run.json").unlink()
        # run.json's scene.up is not read (outputs are +Y up): a zero up axis is harmless, the
        # command must simply work.
        harmless = label == "zero up axis"
        for command in (["eval"], ["render", "--frames", "2", "--size", "32x24", "--out"]):
            cases.append(Case(f"{command[0]} on {label}", "run folder",
                              lambda d, c=command: [c[0], d / "run", *c[1:], *([d / "frames"] if c[0] == "render" else [])],
                              make, may_succeed=harmless,
                              check=exists("frames/0001.png" if command[0] == "render" else "run/eval.json")))
    cases.append(Case("export into a folder", "run folder",
                      lambda d: ["export", d / "run", "--format", "glb", "--out", d / "dir.glb"],
                      lambda d: (run_folder(d / "run"), (d / "dir.glb").mkdir())))
    cases.append(Case("export suffix mismatch", "run folder",
                      lambda d: ["export", d / "run", "--format", "obj", "--out", d / "export.glb"],
                      lambda d: run_folder(d / "run")))
    cases.append(Case("export bare glb to obj", "run folder",
                      lambda d: ["export", d / "box.glb", "--format", "obj", "--out", d / "export.obj"],
                      lambda d: textured_glb(d / "box.glb"), may_succeed=True, check=exists("export.obj")))
    cases.append(Case("eval unknown metric", "run folder", lambda d: ["eval", d / "run", "--metric", "beauty"],
                      lambda d: run_folder(d / "run")))

    def payload(d: Path) -> None:
        import torch

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {d / 'pwned'}",))
        (d / "out").mkdir()
        torch.save({"version": 2, "x": Payload()}, d / "out" / "checkpoint.pt")

    cases.append(Case("resume from a pickle-payload checkpoint", "run folder",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "out", "--resume"],
                      payload, check=lambda d: "payload ran" if (d / "pwned").exists() else None,
                      check_on_error=True, outputs=("pwned", "out/run.json")))
    cases.append(Case("resume from a truncated checkpoint", "run folder",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "out", "--resume"],
                      lambda d: write(d / "out" / "checkpoint.pt", b"PK\x03\x04trunc"), outputs=("out/run.json",)))
    cases.append(Case("resume without checkpoint", "run folder",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "out", "--resume"]))
    cases.append(Case("out under a file", "output",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "f" / "run"],
                      lambda d: write(d / "f", "x"), outputs=()))
    cases.append(Case("out in /proc", "output",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", "/proc/meshstyle-fuzz"]))
    cases.append(Case("out already holds a run", "output",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "run"],
                      lambda d: run_folder(d / "run"), outputs=()))
    cases.append(Case("out locked by a live run", "output",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "out"],
                      lambda d: write(d / "out" / ".meshstyle.lock", json.dumps(
                          {"pid": os.getpid(), "host": os.uname().nodename})), outputs=("out/run.json",)))
    cases.append(Case("render a bare glb with an unwritable cache", "output",
                      lambda d: ["render", d / "box.glb", "--cameras", "orbit", "--frames", "2", "--size", "32x24",
                                 "--out", d / "frames"],
                      lambda d: (textured_glb(d / "box.glb"), write(d / "cache", "a file, not a folder")),
                      may_succeed=True, check=exists("frames/0001.png")))
    # ---- run folders and bare results, for every command that reads one
    for command in (["eval"], ["render", "--frames", "2", "--size", "32x24", "--out", "FRAMES"], ["view", "--port", "0"],
                    ["export", "--format", "glb", "--out", "EXPORT"]):
        def argv(d, target, c=command):
            return [c[0], target, *[{"FRAMES": d / "frames", "EXPORT": d / "export.glb"}.get(a, a) for a in c[1:]]]
        name = command[0]
        cases.append(Case(f"{name} on a missing run folder", "result", lambda d, a=argv: a(d, d / "nowhere")))
        cases.append(Case(f"{name} on a text file named .glb", "result", lambda d, a=argv: a(d, d / "t.glb"),
                          lambda d: write(d / "t.glb", "this is not a mesh\n")))
        cases.append(Case(f"{name} on a zero-byte .obj", "result", lambda d, a=argv: a(d, d / "z.obj"),
                          lambda d: write(d / "z.obj", b"")))
        cases.append(Case(f"{name} on run.json of another version", "result", lambda d, a=argv: a(d, d / "run"),
                          lambda d: run_folder(d / "run", run={"version": 99, "cameras": []})))
    cases.append(Case("eval on a run whose run.json is a folder", "result", lambda d: ["eval", d / "run"],
                      lambda d: (run_folder(d / "run"), (d / "run" / "run.json").unlink(), (d / "run" / "run.json").mkdir())))
    cases.append(Case("eval on a run whose stylized.glb is text", "result", lambda d: ["eval", d / "run"],
                      lambda d: (run_folder(d / "run"), write(d / "run" / "stylized.glb", "not a glb"))))
    cases.append(Case("render an empty folder", "result",
                      lambda d: ["render", d / "empty", "--out", d / "frames"], lambda d: (d / "empty").mkdir()))
    cases.append(Case("eval a symlink loop", "result", lambda d: ["eval", d / "loop.glb"],
                      lambda d: os.symlink(d / "loop.glb", d / "loop.glb")))
    cases.append(Case("export a folder named .glb that is no run", "result",
                      lambda d: ["export", d / "x.glb", "--format", "obj", "--out", d / "export.obj"],
                      lambda d: (d / "x.glb").mkdir()))
    # As root, permissions do not stop reading: then the render must simply work.
    cases.append(Case("render with run.json chmod 000", "result",
                      lambda d: ["render", d / "run", "--frames", "2", "--size", "32x24", "--out", d / "frames"],
                      lambda d: (run_folder(d / "run"), os.chmod(d / "run" / "run.json", 0)),
                      may_succeed=True, check=exists("frames/0001.png")))
    cases.append(Case("export onto the run's own stylized.glb", "result",
                      lambda d: ["export", d / "run", "--format", "glb", "--out", d / "run" / "stylized.glb"],
                      lambda d: run_folder(d / "run"), outputs=("export.glb",)))
    cases.append(Case("view --port 70000", "result", lambda d: ["view", d / "run", "--port", "70000"],
                      lambda d: run_folder(d / "run")))
    cases.append(Case("render --fov nan", "result", lambda d: ["render", d / "run", "--fov", "nan", "--out", d / "frames"],
                      lambda d: run_folder(d / "run")))
    cases.append(Case("render --frames -3", "result",
                      lambda d: ["render", d / "run", "--frames", "-3", "--out", d / "frames"], lambda d: run_folder(d / "run")))
    cases.append(Case("export --cameras into a folder", "result",
                      lambda d: ["export", d / "run", "--cameras", d / "cams"],
                      lambda d: (run_folder(d / "run"), (d / "cams").mkdir())))

    # ---- paths
    cases.append(Case("mesh is a symlink loop", "path", stylize_mesh("loop.obj"),
                      lambda d: os.symlink(d / "loop.obj", d / "loop.obj")))
    cases.append(Case("mesh is a named pipe", "path", stylize_mesh("fifo.obj"), lambda d: os.mkfifo(d / "fifo.obj"),
                      timeout=120))
    cases.append(Case("mesh is gzip named .obj", "path", stylize_mesh("m.obj"),
                      lambda d: write(d / "m.obj", zlib.compress(TETRA.encode()))))
    cases.append(Case("unicode and spaces in every path", "path",
                      lambda d: ["stylize", d / "mésh dir" / "ball ü.obj", "--style", d / "stÿle é" / "s p.png",
                                 "--out", d / "out", *TINY],
                      lambda d: (write(d / "mésh dir" / "ball ü.obj", TETRA),
                                 pil_image(d / "stÿle é" / "s p.png", "RGB", (200, 30, 30))),
                      may_succeed=True, check=exists("out/run.json")))
    cases.append(Case("--out is the input's folder", "path",
                      lambda d: ["stylize", d / "in" / "m.obj", "--style", "circles", "--out", d / "in", *TINY],
                      lambda d: write(d / "in" / "m.obj", TETRA), outputs=("in/run.json", "in/texture.png")))
    cases.append(Case("--out is the scan folder", "path",
                      lambda d: ["stylize", d / "scan", "--style", "circles", "--out", d / "scan", *TINY],
                      lambda d: nerf_folder(d, {"camera_angle_x": 1, "frames": [
                          {"file_path": "images/0.png", "transform_matrix": np.eye(4).tolist()}]}),
                      outputs=("scan/run.json", "scan/texture.png")))
    cases.append(Case("--out is the style image", "path",
                      lambda d: ["stylize", "demo-object", "--style", d / "s.png", "--out", d / "s.png", *TINY],
                      lambda d: pil_image(d / "s.png", "RGB", (1, 2, 3)), outputs=()))
    cases.append(Case("--config is a folder", "path",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "out", "--config", d / "c"],
                      lambda d: (d / "c").mkdir()))
    cases.append(Case("--config is binary", "path",
                      lambda d: ["stylize", "demo-object", "--style", "circles", "--out", d / "out", "--config", d / "c.toml"],
                      lambda d: write(d / "c.toml", bytes(range(256)))))
    cases.append(Case("--style is an empty string", "path",
                      lambda d: ["stylize", "demo-object", "--style", "", "--out", d / "out", *TINY]))

    # ---- style images
    style("decompression bomb 1-bit png", "s.png", lambda p: pil_image(p, "1", 0, size=(15000, 15000)))
    style("exr bytes", "s.exr", lambda p: write(p, b"v/1\x01" + b"\0" * 60))
    style("gzip named png", "s.png", lambda p: write(p, zlib.compress(b"\x89PNG" * 20)))
    style("animated gif, first frame red", "s.gif",
          lambda p: __import__("PIL.Image").Image.new("RGB", (32, 32), (255, 0, 0)).save(
              p, save_all=True, append_images=[__import__("PIL.Image").Image.new("RGB", (32, 32), (0, 0, 255))]),
          may_succeed=True, expected=[1, 0, 0])
    style("1x1 pixel style", "s.png", lambda p: pil_image(p, "RGB", (0, 0, 255), size=(1, 1)),
          may_succeed=True, expected=[0, 0, 1])
    style("grey 16-bit png", "s.png", lambda p: pil_image(p, "I;16", 32768),
          may_succeed=True, expected=[0.5, 0.5, 0.5])
    style("webp", "s.webp", lambda p: pil_image(p, "RGB", (0, 255, 0), lossless=True),
          may_succeed=True, expected=[0, 1, 0])

    # ---- meshes
    mesh("stl with nan vertices", "m.stl",
         lambda: b"\0" * 80 + struct.pack("<I", 1) + struct.pack("<12f", 0, 0, 1, float("nan"), 0, 0, 1, 0, 0, 0, 1, 0)
         + b"\0\0")
    mesh("obj faces only, no vertices", "m.obj", "f 1 2 3\nf 2 3 4\n")
    mesh("obj crlf, comments and quads", "m.obj",
         "# a box side\r\nv 0 0 0\r\nv 1 0 0\r\nv 1 1 0\r\nv 0 1 0\r\nv 0 0 1\r\nf 1 2 3 4\r\nf 1 2 5\r\nf 2 3 5\r\n",
         may_succeed=True)

    # ---- batch jobs files
    def jobs(name: str, text, may_succeed: bool = False) -> None:
        cases.append(Case(name, "batch", lambda d: ["batch", d / "jobs.toml"],
                          lambda d: write(d / "jobs.toml", text(d) if callable(text) else text),
                          may_succeed=may_succeed, outputs=("out",)))
    jobs("batch: invalid TOML", "out = 'x\nscenes = [\n")
    jobs("batch: unknown key", "out = 'out'\nscenes = ['demo-object']\nstyles = ['circles']\ncolour = 3\n")
    jobs("batch: glob matches nothing", "out = 'out'\nscenes = ['nomatch/*.ply']\nstyles = ['circles']\n")
    jobs("batch: missing style", "out = 'out'\nscenes = ['demo-object']\nstyles = ['nowhere.png']\n")
    jobs("batch: bad [set] value", "out = 'out'\nscenes = ['demo-object']\nstyles = ['circles']\n[set]\n'optim.iters' = -2\n")
    jobs("batch: binary jobs file", bytes(range(256)))
    cases.append(Case("batch: jobs file is a folder", "batch", lambda d: ["batch", d / "jobs.toml"],
                      lambda d: (d / "jobs.toml").mkdir()))
    cases.append(Case("batch: jobs file missing", "batch", lambda d: ["batch", d / "none.toml"]))

    # ---- --set and flags
    for values in (["--set", "=5"], ["--set", "optim.lr==1"], ["--set", "optim.iters=1e400"], ["--set", "optim.iters=3.5"],
                   ["--set", "texture.size=[1,2]"], ["--set", "loss.style_layers=[]"], ["--set", "optim.lr=0x10"],
                   ["--set", "optim.iters=99999999999999999999"], ["--iters", "ten"], ["--resume", "--overwrite"]):
        cases.append(Case(f"flags {' '.join(values)}", "config",
                          lambda d, v=values: ["stylize", "demo-object", "--style", "circles", "--out", d / "out", *v]))
    cases.append(Case("unknown command", "usage", lambda d: ["paint"]))
    cases.append(Case("stylize without --style", "usage", lambda d: ["stylize", "demo-object"]))
    cases.append(Case("unknown built-in scene", "usage", lambda d: ["stylize", "moon-base", "--style", "circles"]))
    return cases


# --------------------------------------------------------------------------- running


def run_case(case: Case, folder: Path) -> tuple[bool, int | str, float, str]:
    case.setup(folder)
    before = {p for p in folder.rglob("*")}
    env = dict(os.environ, MESHSTYLE_QUIET="1", MESHSTYLE_CACHE=str(folder / "cache"))
    env.pop("MESHSTYLE_DEBUG", None)
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "meshstyle", *map(str, case.args(folder))], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=case.timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout", time.monotonic() - started, "hung"
    seconds = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("meshstyle: warning:")]
    message = errors[-1] if errors else (lines[-1] if lines else "")
    if "Traceback" in done.stderr:
        return False, done.returncode, seconds, "traceback: " + message
    problem = case.check(folder)
    if done.returncode == 0:
        if not case.may_succeed:
            return False, 0, seconds, "succeeded on input that must be refused"
        return problem is None, 0, seconds, problem or "ok"
    if done.returncode != 2:
        return False, done.returncode, seconds, message
    if len(errors) != 1 or not errors[0].startswith("meshstyle: "):
        return False, 2, seconds, f"{len(errors)} error lines"
    left = [p for p in folder.rglob("*") if p not in before and not p.is_relative_to(folder / "cache")
            and any(p.relative_to(folder).as_posix().startswith(o) for o in case.outputs)]
    if left:
        return False, 2, seconds, f"partial output: {left[0].relative_to(folder)}"
    if case.check_on_error and problem is not None:
        return False, 2, seconds, problem
    return True, 2, seconds, message[:150]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only cases whose name contains this")
    parser.add_argument("--group", action="append", help="run only this group (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    cases = [case for case in catalogue() if (not args.only or args.only in case.name)
             and (not args.group or case.group in args.group)]
    if args.list:
        for case in cases:
            print(f"{case.group:11s} {case.name}")
        print(f"{len(cases)} cases")
        return 0
    passed, by_group = 0, {}
    with tempfile.TemporaryDirectory(prefix="meshstyle-fuzz-") as root:
        for index, case in enumerate(cases):
            folder = Path(root) / f"{index:03d}"
            folder.mkdir()
            ok, code, seconds, message = run_case(case, folder)
            passed += ok
            group = by_group.setdefault(case.group, [0, 0])
            group[0] += ok
            group[1] += 1
            print(f"{'PASS' if ok else 'FAIL'} {str(code):>7s} {seconds:5.1f}s  {case.group:11s} {case.name:45s} {message}",
                  flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    print("\n" + ", ".join(f"{group} {ok}/{total}" for group, (ok, total) in by_group.items()))
    print(f"TOTAL {passed}/{len(cases)} passed, {len(cases) - passed} failed")
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
