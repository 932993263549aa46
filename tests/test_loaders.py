"""Mesh files -> Scene: formats, materials, glTF scene graphs, kinds, and one-line errors on bad input."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image
from trimesh.visual.material import PBRMaterial, SimpleMaterial

from meshstyle.errors import InputError
from meshstyle.inputs.load import load_scene
from meshstyle.inputs.meshes import guess_kind, load_mesh_file

QUAD_VERTICES = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])
QUAD_UV = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)


def solid_image(rgb: tuple[int, int, int], size: int = 4) -> Image.Image:
    return Image.fromarray(np.full((size, size, 3), rgb, dtype=np.uint8))


def textured_quad(rgb: tuple[int, int, int], material_cls=PBRMaterial) -> trimesh.Trimesh:
    if material_cls is PBRMaterial:
        material = PBRMaterial(baseColorTexture=solid_image(rgb), metallicFactor=0.0)
    else:
        material = SimpleMaterial(image=solid_image(rgb))
    return trimesh.Trimesh(QUAD_VERTICES, QUAD_FACES, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=QUAD_UV, material=material))


def test_vertex_coloured_ply_keeps_colours_as_float_rgb(tmp_path):
    colours = np.array([[255, 0, 0, 128], [0, 255, 0, 255], [0, 0, 255, 255], [255, 255, 255, 255]], np.uint8)
    trimesh.Trimesh(QUAD_VERTICES, QUAD_FACES, vertex_colors=colours, process=False).export(tmp_path / "quad.ply")
    scene = load_mesh_file(tmp_path / "quad.ply")
    assert scene.vertices.dtype == np.float64 and scene.faces.dtype == np.int64
    assert scene.appearance.vertex_colors.dtype == np.float32
    assert scene.appearance.vertex_colors.shape == (4, 3)  # alpha dropped
    by_position = {tuple(p): tuple(c) for p, c in zip(scene.vertices, scene.appearance.vertex_colors)}
    assert by_position[(0.0, 0.0, 0.0)] == (1.0, 0.0, 0.0)
    assert by_position[(1.0, 1.0, 0.0)] == (0.0, 0.0, 1.0)
    assert scene.up == (0.0, 0.0, 1.0) and scene.name == "quad" and scene.appearance.uv is None


@pytest.mark.parametrize("suffix", [".off", ".stl"])
def test_plain_formats_load_with_geometry_only(tmp_path, suffix):
    sphere = trimesh.creation.icosphere(subdivisions=1)
    sphere.export(tmp_path / f"ball{suffix}")
    scene = load_mesh_file(tmp_path / f"ball{suffix}")
    assert len(scene.faces) == len(sphere.faces)
    # STL stores every triangle on its own; welding joins them back into the 42-vertex sphere.
    assert len(scene.vertices) == len(sphere.vertices)
    assert np.allclose(np.sort(scene.vertices @ [1, 10, 100]), np.sort(sphere.vertices @ [1, 10, 100]), atol=1e-6)
    assert scene.kind == "object"


def test_obj_with_two_materials_keeps_both_textures(tmp_path):
    red, blue = textured_quad((255, 0, 0), SimpleMaterial), textured_quad((0, 0, 255), SimpleMaterial)
    blue.apply_translation([2, 0, 0])
    trimesh.Scene([red, blue]).export(tmp_path / "two.obj")
    scene = load_mesh_file(tmp_path / "two.obj")
    appearance = scene.appearance
    assert len(appearance.textures) == 2 and appearance.uv.shape == (4, 3, 2)
    colour_of_face = np.array([appearance.textures[t][0, 0] for t in appearance.face_texture])
    right_half = scene.vertices[scene.faces].mean(axis=1)[:, 0] > 1.5
    assert np.allclose(colour_of_face[right_half], [0, 0, 1]) and np.allclose(colour_of_face[~right_half], [1, 0, 0])


def test_gltf_scene_graph_is_flattened_with_node_transforms(tmp_path):
    graph = trimesh.Scene()
    graph.add_geometry(textured_quad((0, 255, 0)), node_name="moved",
                       transform=trimesh.transformations.translation_matrix([5, 0, 0]))
    plain = trimesh.Trimesh(QUAD_VERTICES, QUAD_FACES, process=False,
                            visual=trimesh.visual.TextureVisuals(material=PBRMaterial(baseColorFactor=[255, 128, 0, 255])))
    graph.add_geometry(plain, node_name="turned", transform=trimesh.transformations.rotation_matrix(np.pi / 2, [0, 0, 1]))
    graph.export(tmp_path / "graph.glb")
    scene = load_mesh_file(tmp_path / "graph.glb")
    assert scene.up == (0.0, 1.0, 0.0)
    assert len(scene.faces) == 4 and len(scene.appearance.textures) == 1
    textured = scene.appearance.face_texture >= 0
    assert np.allclose(scene.vertices[scene.faces[textured]].min(axis=(0, 1)), [5, 0, 0])
    # The untextured quad is turned 90 degrees about z (x -> y) and keeps its base colour.
    assert np.allclose(scene.vertices[scene.faces[~textured]].min(axis=(0, 1)), [-1, 0, 0], atol=1e-6)
    plain_colours = scene.appearance.vertex_colors[scene.faces[~textured]].reshape(-1, 3)
    assert np.allclose(plain_colours, [1.0, 128 / 255, 0.0], atol=1e-6)
    assert np.allclose(scene.appearance.textures[0], [0, 1, 0])


def test_missing_texture_warns_and_falls_back_to_material_colour(tmp_path, capsys):
    (tmp_path / "quad.obj").write_text("mtllib quad.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                                       "usemtl paint\nf 1/1 2/2 3/3\n")
    (tmp_path / "quad.mtl").write_text("newmtl paint\nKd 0.2 0.4 0.6\nmap_Kd gone.png\n")
    scene = load_mesh_file(tmp_path / "quad.obj")
    warning = capsys.readouterr().err
    assert "gone.png" in warning and "warning" in warning
    assert not scene.appearance.textures
    assert np.allclose(scene.appearance.vertex_colors, [0.2, 0.4, 0.6], atol=1 / 255)


def test_degenerate_and_unreferenced_parts_are_dropped_quietly(tmp_path):
    vertices = np.vstack([QUAD_VERTICES, [[9, 9, 9], [0.5, 0, 0]]])          # 4: unused, 5: on an edge
    faces = np.vstack([QUAD_FACES, [[0, 1, 5], [2, 2, 3]]])                  # zero area, repeated index
    trimesh.Trimesh(vertices, faces, process=False).export(tmp_path / "dirty.ply")
    scene = load_mesh_file(tmp_path / "dirty.ply")
    assert len(scene.faces) == 2 and len(scene.vertices) == 4
    assert np.allclose(np.sort(scene.vertices[scene.faces].reshape(-1, 3), axis=0),
                       np.sort(QUAD_VERTICES[QUAD_FACES].reshape(-1, 3), axis=0))


def test_room_and_object_kinds():
    box = trimesh.creation.box(extents=[4, 5, 2.7])
    assert guess_kind(box.vertices, box.faces) == "object"
    assert guess_kind(box.vertices, box.faces[:, ::-1]) == "room"    # same box seen from inside
    # An open scan (no ceiling, one wall missing) still reads as a room.
    centres = box.triangles_center
    open_faces = box.faces[(centres[:, 2] < 1.3) & (centres[:, 0] < 1.9)][:, ::-1]
    assert guess_kind(box.vertices, open_faces) == "room"


def bad_files(folder):
    (folder / "mesh.fbx").write_bytes(b"Kaydara FBX Binary")
    sphere = trimesh.creation.icosphere(subdivisions=2)
    data = sphere.export(file_type="ply")
    (folder / "truncated.ply").write_bytes(data[: len(data) // 2])
    trimesh.PointCloud(np.random.default_rng(0).random((50, 3))).export(folder / "points.ply")
    (folder / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    (folder / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nv 0 1 0\nf 1 2 3\nf 4 4 1\n")
    return {"missing.ply": "no such file", "mesh.fbx": "unknown mesh format", "truncated.ply": "cannot read",
            "points.ply": "no triangles", "nan.obj": "non-finite", "flat.obj": "only degenerate"}


def test_bad_inputs_raise_one_line_input_errors_naming_the_file(tmp_path):
    for name, problem in bad_files(tmp_path).items():
        with pytest.raises(InputError) as caught:
            load_mesh_file(tmp_path / name)
        message = str(caught.value)
        assert name in message and problem in message and "\n" not in message, message


def test_load_scene_dispatches_on_names_and_paths(tmp_path):
    room = load_scene("demo-room")
    assert room.name == "demo-room" and room.kind == "room" and len(room.faces) > 10_000
    trimesh.creation.icosphere().export(tmp_path / "ball.obj")
    assert load_scene(str(tmp_path / "ball.obj")).name == "ball"
    with pytest.raises(InputError, match="no such file, folder or built-in scene"):
        load_scene("no-such-scene")
    with pytest.raises(InputError, match="no such file"):
        load_scene(tmp_path / "gone.ply")
