"""Outputs land in the right frame (glTF: +Y up, metres), run folders hold no leftovers, and run.json
says where everything came from. Real runs of the CLI (in process) on meshes built here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from meshstyle.cli import main
from meshstyle.geometry.frames import transform_points, transform_pose

TINY = ("seed = 1\n[optim]\niters = 1\n[cameras]\nviews = 2\nholdout = 0\n[texture]\nsize = 128\n"
        "[raster]\nimage_height = 48\nlevels = 1\n[loss]\nstyle_size = 64\nstyle_scales = [1.0]\n")


def spike_object() -> trimesh.Trimesh:
    """A wide low box with a tall spike near its +x end: up and +x are told apart at a glance.
    Y-up coordinates, metres."""
    base = trimesh.creation.box(extents=(1.0, 0.3, 0.4))
    base.apply_translation((0.0, 0.15, 0.0))
    spike = trimesh.creation.cone(radius=0.08, height=0.7, sections=12)
    spike.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, (1, 0, 0)))  # cone axis z -> y
    spike.apply_translation((0.3, 0.3, 0.0))
    return trimesh.util.concatenate([base, spike])


# Blender's Y-up <-> Z-up convention: (x, y, z) Y-up is (x, -z, y) Z-up.
Y_TO_Z = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def glb_vertices(path: Path) -> np.ndarray:
    """Vertices as a viewer places them: the scene graph applied."""
    return np.asarray(trimesh.load_scene(path, process=False).to_geometry().vertices)


def obj_vertices(path: Path) -> np.ndarray:
    return np.array([[float(v) for v in line.split()[1:4]] for line in path.read_text().splitlines()
                     if line.startswith("v ")])


def same_points(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    return (cKDTree(b).query(a)[0].max() <= tolerance) and (cKDTree(a).query(b)[0].max() <= tolerance)


def stylize(scene: Path, out: Path, *extra: str) -> dict:
    config = out.parent / "tiny.toml"
    config.write_text(TINY)
    code = main(["stylize", str(scene), "--style", "circles", "--config", str(config), "--out", str(out), *extra])
    assert code == 0
    return json.loads((out / "run.json").read_text())


@pytest.fixture(scope="module")
def frame_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    thing = spike_object()
    thing.export(root / "thing.obj")                       # Y-up, as Blender and three.js write
    z_up = thing.copy()
    z_up.apply_transform(Y_TO_Z)
    z_up.export(root / "thing.ply")                        # Z-up, as scanners write
    in_cm = z_up.copy()
    in_cm.apply_scale(100.0)
    in_cm.export(root / "thing_cm.ply")
    runs = {"obj": stylize(root / "thing.obj", root / "obj"),
            "ply": stylize(root / "thing.ply", root / "ply"),
            "cm": stylize(root / "thing_cm.ply", root / "cm", "--units", "cm", "--obj-frame", "input")}
    return root, thing, runs


@pytest.mark.parametrize("name", ["obj", "ply", "cm"])
def test_glb_is_y_up_in_metres_whatever_the_input(frame_runs, name):
    root, thing, runs = frame_runs
    glb = glb_vertices(root / name / "stylized.glb")
    # The same object in the same place: +Y up (the spike's tip is the highest point), metres.
    assert same_points(glb, np.asarray(thing.vertices), 1e-5)
    tip = glb[np.argmax(glb[:, 1])]
    assert tip[1] == pytest.approx(1.0, abs=1e-5) and tip[0] > 0.2
    assert runs[name]["frame"]["output"].startswith("glTF")


@pytest.mark.parametrize("name", ["obj", "ply"])
def test_obj_is_in_the_glb_frame_by_default(frame_runs, name):
    root, _, _ = frame_runs
    assert same_points(obj_vertices(root / name / "stylized.obj"), glb_vertices(root / name / "stylized.glb"), 1e-6)


def test_obj_frame_input_keeps_the_inputs_coordinates(frame_runs):
    root, _, _ = frame_runs
    original = np.asarray(trimesh.load(root / "thing_cm.ply", process=False).vertices)
    assert same_points(obj_vertices(root / "cm" / "stylized.obj"), original, 1e-4)


@pytest.mark.parametrize("name,source", [("obj", "thing.obj"), ("ply", "thing.ply"), ("cm", "thing_cm.ply")])
def test_run_json_transform_maps_input_vertices_onto_the_glb(frame_runs, name, source):
    root, _, runs = frame_runs
    matrix = np.asarray(runs[name]["frame"]["input_to_output"])
    original = np.asarray(trimesh.load(root / source, process=False).vertices)
    assert same_points(transform_points(matrix, original), glb_vertices(root / name / "stylized.glb"), 1e-5)
    # The cameras in both frames are the same cameras.
    for output, given in zip(runs[name]["cameras"], runs[name]["cameras_input"]):
        assert np.allclose(transform_pose(matrix, np.asarray(given["cam_to_world"])), output["cam_to_world"],
                           atol=1e-9)


def test_run_json_records_provenance(frame_runs):
    root, _, runs = frame_runs
    import hashlib

    run = runs["ply"]
    assert "stylize" in run["provenance"]["command_line"] and "thing.ply" in run["provenance"]["command_line"]
    assert run["provenance"]["meshstyle"] and run["provenance"]["timestamp"].endswith("+00:00")
    expected = hashlib.sha256((root / "thing.ply").read_bytes()).hexdigest()
    assert run["inputs"]["scene_fingerprint"]["sha256"] == expected
    assert run["inputs"]["style"] == {"built_in": "circles"}
    assert run["frame"]["up_source"] == ".ply convention" and run["frame"]["input_up"] == [0, 0, 1]


def test_overwrite_leaves_no_stale_files(frame_runs):
    root, _, _ = frame_runs
    out = root / "obj"
    assert main(["eval", str(out), "--metric", "coverage"]) == 0
    (out / "views" / "0099.png").write_bytes((out / "views" / "0000.png").read_bytes())
    assert (out / "eval.json").is_file()
    run = stylize(root / "thing.obj", out, "--overwrite")
    present = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert present == run["files"]
    assert "eval.json" not in present and "views/0099.png" not in present


def test_overwrite_refuses_a_folder_with_foreign_files(frame_runs, capsys):
    root, _, _ = frame_runs
    out = root / "mixed"
    out.mkdir()
    (out / "run.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    assert main(["stylize", str(root / "thing.obj"), "--style", "circles", "--out", str(out), "--overwrite"]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (out / "run.json").is_file()


def test_render_out_replaces_older_frames(frame_runs):
    root, _, _ = frame_runs
    frames = root / "frames"
    for count in (5, 3):
        assert main(["render", str(root / "ply"), "--cameras", "orbit", "--frames", str(count), "--size", "40x30",
                     "--out", str(frames)]) == 0
    assert sorted(path.name for path in frames.iterdir()) == ["0000.png", "0001.png", "0002.png"]


def test_export_refuses_an_existing_target_unless_overwrite(frame_runs, capsys):
    root, _, _ = frame_runs
    target = root / "exported.glb"
    target.write_bytes(b"older")
    assert main(["export", str(root / "ply"), "--format", "glb", "--out", str(target)]) == 2
    assert "--overwrite" in capsys.readouterr().err and target.read_bytes() == b"older"
    assert main(["export", str(root / "ply"), "--format", "glb", "--out", str(target), "--overwrite"]) == 0
    assert same_points(glb_vertices(target), glb_vertices(root / "ply" / "stylized.glb"), 1e-7)


def test_export_obj_in_the_input_frame_of_a_run(frame_runs):
    root, _, _ = frame_runs
    out = root / "in_input.obj"
    assert main(["export", str(root / "ply"), "--format", "obj", "--obj-frame", "input", "--out", str(out)]) == 0
    original = np.asarray(trimesh.load(root / "thing.ply", process=False).vertices)
    assert same_points(obj_vertices(out), original, 1e-5)


def test_exported_cameras_render_the_runs_views(frame_runs):
    """transforms.json in nerfstudio's form (OpenGL axes, output frame) renders the run's own cameras."""
    from meshstyle.views.cameras import Camera
    from meshstyle.outputs.render import render_views
    from meshstyle.outputs.run_folder import load_result

    root, _, runs = frame_runs
    transforms, path_file = root / "transforms.json", root / "camera_path.json"
    assert main(["export", str(root / "ply"), "--cameras", str(transforms)]) == 0
    assert main(["export", str(root / "ply"), "--cameras", str(path_file)]) == 0
    document = json.loads(transforms.read_text())
    camera_path = json.loads(path_file.read_text())
    assert len(document["frames"]) == len(camera_path["camera_path"]) == len(runs["ply"]["cameras"])
    first = np.asarray(runs["ply"]["cameras"][0]["cam_to_world"])
    assert np.allclose(np.asarray(document["frames"][0]["transform_matrix"]), first @ np.diag([1, -1, -1, 1]))
    assert np.allclose(np.reshape(camera_path["camera_path"][0]["camera_to_world"], (4, 4)),
                       first @ np.diag([1, -1, -1, 1]))
    frames = root / "from_transforms"
    cameras = [Camera.from_dict(c) for c in runs["ply"]["cameras"]]
    size = f"{cameras[0].width}x{cameras[0].height}"
    assert main(["render", str(root / "ply"), "--cameras", str(transforms), "--size", size,
                 "--frames", str(len(cameras)), "--out", str(frames)]) == 0
    expected = list(render_views(load_result(root / "ply").mesh, cameras))
    import imageio.v3 as iio

    for index, image in enumerate(expected):
        written = iio.imread(frames / f"{index:04d}.png").astype(np.float32) / 255
        assert np.abs(written - image).max() <= 1 / 255 + 1e-6


def test_bad_frame_options_fail_before_any_work(tmp_path, capsys):
    assert main(["stylize", "demo-object", "--style", "circles", "--out", str(tmp_path / "r"),
                 "--set", "scene.up=sideways"]) == 2
    assert "sideways" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
