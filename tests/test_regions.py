"""A style per region (`--region NAME=STYLE`, `NAME=keep`): region sources, errors, and real runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import meshstyle as ms
from meshstyle.atlas.unwrap import rasterize_atlas
from meshstyle.errors import InputError
from meshstyle.inputs.load import load_scene
from meshstyle.inputs.regions import NYU40_NAMES, read_labels_file, resolve_regions
from meshstyle.pipeline import quick_config

BOX_FACES = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
                      [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]])
BOX_CORNERS = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                        [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=float)
MATERIALS = ("red_box", "blue_box", "kept_box")


def write_boxes(folder: Path) -> Path:
    """Three unit cubes in a row, one OBJ material each (usemtl), all mid grey."""
    lines, mtl = ["mtllib boxes.mtl"], []
    for index, name in enumerate(MATERIALS):
        for corner in BOX_CORNERS + [1.6 * index, 0, 0]:
            lines.append("v {:.3f} {:.3f} {:.3f}".format(*corner))
    for index, name in enumerate(MATERIALS):
        lines.append(f"usemtl {name}")
        lines += ["f {} {} {}".format(*(BOX_FACES[f] + 1 + 8 * index)) for f in range(12)]
        # A different grey per box, so that `keep` is told apart from a palette step.
        grey = 0.35 + 0.15 * index
        mtl += [f"newmtl {name}", f"Kd {grey} {grey} {grey}"]
    (folder / "boxes.obj").write_text("\n".join(lines) + "\n")
    (folder / "boxes.mtl").write_text("\n".join(mtl) + "\n")
    return folder / "boxes.obj"


def write_style(path: Path, colour: tuple[float, float, float], seed: int) -> Path:
    """A noisy painting around one colour (strokes for VGG, one clear palette mean)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 0.08, size=(24, 24, 1)).repeat(4, 0).repeat(4, 1)
    image = np.clip(np.asarray(colour)[None, None] + noise, 0, 1)
    iio.imwrite(path, (image * 255).astype(np.uint8))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MESHSTYLE_QUIET="1")
    return subprocess.run([sys.executable, "-m", "meshstyle", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def tiny_config() -> ms.StylizeConfig:
    config = quick_config()
    config.cameras.views, config.cameras.holdout = 6, 0
    config.raster.image_height, config.raster.levels = 64, 1
    config.texture.size = 128
    config.loss.style_size = 96
    config.optim.iters = 6
    return config


def test_material_names_become_regions(tmp_path):
    scene = load_scene(write_boxes(tmp_path))
    assert scene.labels is not None and set(scene.labels.names) == set(MATERIALS)
    assert scene.labels.face_counts() == {name: 12 for name in MATERIALS}
    # Each face keeps its own material through loading (the boxes are 1.6 m apart along x).
    centres = scene.vertices[scene.faces].mean(axis=1)[:, 0]
    for index, name in enumerate(MATERIALS):
        faces = scene.labels.face == scene.labels.names.index(name)
        assert np.all(np.abs(centres[faces] - (1.6 * index + 0.5)) < 0.6)


def test_gltf_material_names_become_regions(tmp_path):
    import trimesh
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    wood, metal = trimesh.creation.box(), trimesh.creation.box()
    metal.apply_translation([2, 0, 0])
    wood.visual = TextureVisuals(material=PBRMaterial(name="wood", baseColorFactor=[200, 100, 50, 255]))
    metal.visual = TextureVisuals(material=PBRMaterial(name="metal", baseColorFactor=[50, 100, 200, 255]))
    trimesh.Scene([wood, metal]).export(tmp_path / "two.glb")
    scene = load_scene(tmp_path / "two.glb")
    assert scene.labels.face_counts() == {"wood": 12, "metal": 12}
    plan = resolve_regions(scene, ("metal=keep",), None)
    assert [(r.name, r.faces, r.keep) for r in plan.regions] == [("rest", 12, False), ("metal", 12, True)]


def test_each_region_gets_its_own_palette_and_keep_stays_exact(tmp_path):
    obj = write_boxes(tmp_path)
    red = write_style(tmp_path / "red.png", (0.85, 0.15, 0.1), 1)
    blue = write_style(tmp_path / "blue.png", (0.1, 0.3, 0.9), 2)
    config = tiny_config()
    config.regions.styles = (f"red_box={red}", f"blue_box={blue}", "kept_box=keep")
    scene = load_scene(obj)
    result = ms.stylize(scene, style="circles", config=config)
    out = tmp_path / "run"
    result.save(out)

    texture = iio.imread(out / "texture.png")[..., :3].astype(np.float64) / 255
    initial = iio.imread(out / "initial_texture.png")[..., :3]
    face_id, _ = rasterize_atlas(result.mesh.uv, texture.shape[0])
    label = np.where(face_id >= 0, scene.labels.face[face_id.clip(0)], -1)
    means = {name: texture[label == scene.labels.names.index(name)].mean(axis=0) for name in MATERIALS}
    targets = {"red_box": np.array([0.85, 0.15, 0.1]), "blue_box": np.array([0.1, 0.3, 0.9])}
    for name, own in targets.items():
        other = targets["blue_box" if name == "red_box" else "red_box"]
        assert np.linalg.norm(means[name] - own) < np.linalg.norm(means[name] - other), (name, means[name])
    kept = label == scene.labels.names.index("kept_box")
    stylized = iio.imread(out / "texture.png")[..., :3]
    assert kept.sum() > 100 and np.array_equal(stylized[kept], initial[kept])
    # ... while the painted boxes did change.
    red_texels = label == scene.labels.names.index("red_box")
    assert not np.array_equal(stylized[red_texels], initial[red_texels])

    record = _find_regions(json.loads((out / "run.json").read_text()))
    assert {(r["name"], r["faces"]) for r in record} == {(name, 12) for name in MATERIALS}
    assert {r["name"]: r["style"] for r in record}["kept_box"] == "keep"
    assert all(r["source"] == "materials" for r in record)


def test_rest_region_of_a_blend_starts_in_the_blends_pooled_palette(tmp_path):
    """With --region, the faces no region names take the main style; when that is a blend, its
    palette step pools the blend's colours (as without regions), not the first style's alone."""
    from meshstyle.pipeline import prepare

    yellow = write_style(tmp_path / "yellow.png", (0.9, 0.85, 0.1), 3)
    blue = write_style(tmp_path / "blue.png", (0.1, 0.3, 0.9), 2)
    red = write_style(tmp_path / "red.png", (0.85, 0.15, 0.1), 1)
    config = tiny_config()
    config.regions.styles = (f"red_box={red}",)
    scene = load_scene(write_boxes(tmp_path))
    prepared = prepare(scene, [str(yellow), str(blue)], config)
    face_id, _ = rasterize_atlas(prepared.atlas.uv, prepared.start.shape[0])
    label = np.where(face_id >= 0, scene.labels.face[face_id.clip(0)], -1)
    rest = (label >= 0) & (label != scene.labels.names.index("red_box"))
    blend_mean = np.mean([iio.imread(path)[..., :3].reshape(-1, 3).mean(0) / 255 for path in (yellow, blue)], axis=0)
    rest_mean = prepared.start[rest].mean(axis=0)
    # The first style alone would put the rest at yellow (0.9, 0.85, 0.1): 0.5 away in red and blue.
    assert np.abs(rest_mean - blend_mean).max() < 0.05, (rest_mean, blend_mean)
    red_mean = prepared.start[label == scene.labels.names.index("red_box")].mean(axis=0)
    assert np.abs(red_mean - np.array([0.85, 0.15, 0.1])).max() < 0.05, red_mean


def _find_regions(document):
    """run.json's regions list wherever the run record puts it."""
    if isinstance(document, dict):
        if isinstance(document.get("regions"), list):
            return document["regions"]
        for value in document.values():
            found = _find_regions(value)
            if found:
                return found
    return None


def test_scannet_labels_ply_names_faces_by_nyu40_majority(tmp_path):
    # A 2-triangle square; vertex labels 1 (wall), 1, 5 (chair), 5: face 0 (0,1,2) -> wall,
    # face 1 (0,2,3) -> chair (two corners of 5).
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
    labels = np.array([1, 1, 5, 5], dtype=np.uint16)
    faces = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32)
    mesh = tmp_path / "scene0000_00_vh_clean_2.ply"
    import trimesh
    trimesh.Trimesh(vertices, faces, process=False).export(mesh)
    write_labels_ply(tmp_path / "scene0000_00_vh_clean_2.labels.ply", vertices, labels, faces)
    scene = load_scene(mesh)
    assert scene.labels is not None and scene.labels.source.startswith("scannet labels")
    names = [scene.labels.names[i] for i in scene.labels.face]
    assert names == ["wall", "chair"]
    assert len(NYU40_NAMES) == 40 and (NYU40_NAMES[0], NYU40_NAMES[6], NYU40_NAMES[39]) == ("wall", "table", "otherprop")
    plan = resolve_regions(scene, ("chair=keep",), None)
    assert [r.name for r in plan.regions] == ["rest", "chair"] and plan.face_region.tolist() == [0, 1]


def write_labels_ply(path: Path, vertices: np.ndarray, labels: np.ndarray, faces: np.ndarray) -> None:
    """A ScanNet-style *_vh_clean_2.labels.ply: binary, vertex x y z + ushort label, triangles."""
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(vertices)}\nproperty float x\n"
              "property float y\nproperty float z\nproperty ushort label\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n").encode()
    vertex = np.zeros(len(vertices), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("label", "<u2")])
    vertex["x"], vertex["y"], vertex["z"] = np.asarray(vertices, dtype=np.float32).T
    vertex["label"] = labels
    face = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"], face["v"] = 3, faces
    path.write_bytes(header + vertex.tobytes() + face.tobytes())


def test_scannet_scan_regions_with_photo_content(tmp_path):
    """A ScanNet folder with its labels PLY: regions by NYU40 name, photos as content targets
    (each region's crop of the photo masked to its own pixels), floor kept exactly."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_scans import make_scannet

    folder = make_scannet(tmp_path / "scene0000_00")
    mesh = folder / "scene0000_00_vh_clean_2.ply"
    import trimesh
    loaded = trimesh.load(mesh, process=False)
    z = np.asarray(loaded.vertices)[:, 2]
    labels = np.where(z < z.min() + 1e-3, 2, np.where(z > z.max() - 1e-3, 22, 1)).astype(np.uint16)
    write_labels_ply(folder / "scene0000_00_vh_clean_2.labels.ply", np.asarray(loaded.vertices), labels,
                     np.asarray(loaded.faces))
    scene = load_scene(folder)
    assert set(scene.labels.names) == {"wall", "floor", "ceiling"}
    config = tiny_config()
    config.cameras.views, config.optim.iters = 4, 4
    config.regions.styles = ("wall=circles", "floor=keep")
    result = ms.stylize(scene, style="strokes", config=config)
    assert result.info["content_target"] == "photo"
    assert [(r["name"], r["style"]) for r in result.info["regions"]] == [
        ("rest", "strokes"), ("wall", "circles"), ("floor", "keep")]
    face_id, _ = rasterize_atlas(result.mesh.uv, result.mesh.texture.shape[0])
    label = np.where(face_id >= 0, scene.labels.face[face_id.clip(0)], -1)
    floor = label == scene.labels.names.index("floor")
    assert floor.sum() > 100 and np.array_equal(result.mesh.texture[floor], result.original.texture[floor])
    wall = label == scene.labels.names.index("wall")
    assert np.abs(result.mesh.texture[wall] - result.original.texture[wall]).mean() > 0.02


def test_labels_file_npy_and_ply_face_labels(tmp_path):
    obj = write_boxes(tmp_path)
    scene = load_scene(obj)
    np.save(tmp_path / "labels.npy", np.array(["a"] * 12 + ["b"] * 24))
    labels = read_labels_file(tmp_path / "labels.npy", scene)
    assert labels.face_counts() == {"a": 12, "b": 24}
    header = ("ply\nformat ascii 1.0\nelement vertex 0\nelement face 36\n"
              "property list uchar int vertex_indices\nproperty int label\nend_header\n")
    body = "".join(f"3 0 0 0 {7 if f < 30 else 9}\n" for f in range(36))
    (tmp_path / "labels.ply").write_text(header + body)
    labels = read_labels_file(tmp_path / "labels.ply", scene)
    assert labels.face_counts() == {"7": 30, "9": 6}


def test_unknown_region_name_exits_2_listing_the_names(tmp_path):
    obj = write_boxes(tmp_path)
    done = run_cli("stylize", str(obj), "--style", "circles", "--region", "sofa=strokes",
                   "--out", str(tmp_path / "o"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sofa" in lines[0] and all(name in lines[0] for name in MATERIALS)
    assert "Traceback" not in done.stderr and not (tmp_path / "o" / "run.json").exists()


@pytest.mark.parametrize("content, problem", [(np.arange(5), "has 5 face labels, but the mesh has 36 faces"),
                                              (b"not numpy", "cannot read")])
def test_bad_labels_file_exits_2_naming_it(tmp_path, content, problem):
    obj = write_boxes(tmp_path)
    labels = tmp_path / "labels.npy"
    if isinstance(content, bytes):
        labels.write_bytes(content)
    else:
        np.save(labels, content)
    done = run_cli("stylize", str(obj), "--style", "circles", "--regions", str(labels),
                   "--region", "1=keep", "--out", str(tmp_path / "o"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(labels) in lines[0] and problem in lines[0], lines
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_region_parsing_refuses_malformed_and_repeated_names(tmp_path):
    scene = load_scene(write_boxes(tmp_path))
    with pytest.raises(InputError, match="NAME=STYLE"):
        resolve_regions(scene, ("red_box",), None)
    with pytest.raises(InputError, match="twice"):
        resolve_regions(scene, ("red_box=keep", "Red_Box=circles"), None)


def test_region_patches_hold_only_their_own_pixels_and_keep_gets_none():
    """split_by_depth with a face->region map: each crop's mask covers one region; a keep region
    has no crop; the shares still sum to 1 over the view."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from test_patches import tilted_plane_pyramid

    from meshstyle.config import LossConfig, RasterConfig
    from meshstyle.stylization.patches import split_by_depth

    raster = RasterConfig(image_height=96, levels=2, level_scale=1.5)
    pyramid, _ = tilted_plane_pyramid(raster)
    # The camera sees two faces of the plane's box (4 and 6): one region each, then face 4 kept.
    seen = set(torch.unique(pyramid.levels[0].face_id[pyramid.levels[0].mask]).tolist())
    assert seen == {4, 6}
    face_region = torch.zeros(12, dtype=torch.int64)
    face_region[4] = 1
    for skip in (frozenset(), frozenset({1})):
        patches = split_by_depth(pyramid, LossConfig(angle_aware=False), 1.0, face_region, skip=skip)
        assert {p.region for p in patches} == {0, 1} - skip
        for patch in patches:
            level = pyramid.levels[patch.level]
            y0, y1, x0, x1 = patch.box
            regions = face_region[level.face_id[y0:y1, x0:x1][patch.mask]]
            assert bool((regions == patch.region).all())
            assert float(patch.weight[0, 0][~patch.mask].abs().sum()) == 0.0
        assert sum(p.share for p in patches) == pytest.approx(1.0)
    plain = split_by_depth(pyramid, LossConfig(), 1.0)
    assert {p.region for p in plain} == {0}
