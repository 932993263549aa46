"""GLB and OBJ export: UV orientation, viewer-ready materials, exact round trips, atomic file sets."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image
from trimesh.visual.material import PBRMaterial

from meshstyle.atlas.unwrap import make_atlas, sample_wrapped
from meshstyle.views.cameras import Camera, intrinsics_from_fov, look_at
from meshstyle.config import SceneConfig
from meshstyle.errors import InputError
from meshstyle.inputs.textured import read_textured
from meshstyle.outputs.export import check_glb, glb_document, up_to_gltf, write_glb, write_obj
from meshstyle.raster.rasterizer import Rasterizer
from meshstyle.outputs.render import psnr
from meshstyle.geometry.scene import Scene, TexturedMesh

RED, GREEN, BLUE, YELLOW = (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)
# OBJ convention: (0,0) is the bottom-left of the image.
CORNER_COLOURS = {(0, 0): BLUE, (1, 0): YELLOW, (1, 1): GREEN, (0, 1): RED}


def four_corner_quad() -> TexturedMesh:
    """Unit quad in z = 0 facing +z, UV = (x, y); texture quadrants: top red|green, bottom blue|yellow."""
    texture = np.zeros((16, 16, 3), dtype=np.float32)
    texture[:8, :8], texture[:8, 8:], texture[8:, :8], texture[8:, 8:] = RED, GREEN, BLUE, YELLOW
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)
    return TexturedMesh(vertices, faces, vertices[faces][..., :2].astype(np.float32), texture)


def render(mesh: TexturedMesh, cameras: list[Camera]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, mask) per camera: fragments from the Rasterizer, colours from texture.sample."""
    import torch

    from meshstyle.stylization.texture import sample

    rasterizer = Rasterizer(mesh.vertices, mesh.faces, mesh.uv)
    texture = torch.from_numpy(np.ascontiguousarray(mesh.texture.transpose(2, 0, 1)))
    images = []
    for fragments in rasterizer.render_many(cameras):
        with torch.no_grad():
            colour = sample(texture, fragments.uv, fragments.footprint, mask=fragments.mask)
        images.append((colour.numpy().transpose(1, 2, 0), fragments.mask.numpy()))
    return images


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_four_corners_keep_their_colours_through_trimesh(tmp_path, suffix):
    path = tmp_path / f"quad{suffix}"
    (write_glb if suffix == ".glb" else write_obj)(four_corner_quad(), path)
    loaded = trimesh.load(path, force="mesh", process=False)
    material = loaded.visual.material
    image = material.baseColorTexture if isinstance(material, PBRMaterial) else material.image
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    positions = np.asarray(loaded.vertices)
    for position, uv in zip(positions, np.asarray(loaded.visual.uv)):
        corner = tuple(int(round(value)) for value in position[:2])
        assert np.allclose(uv, corner, atol=1e-6)
        inside = 0.1 + 0.8 * np.asarray(uv)              # a little inside the corner's quadrant
        assert np.allclose(sample_wrapped(pixels, inside[None])[0], CORNER_COLOURS[corner]), corner


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_reimported_quad_renders_the_corner_colours(tmp_path, suffix):
    path = tmp_path / f"quad{suffix}"
    (write_glb if suffix == ".glb" else write_obj)(four_corner_quad(), path)
    mesh = read_textured(path)
    camera = Camera(K=intrinsics_from_fov(64, 64, 40.0), width=64, height=64,
                    cam_to_world=look_at(np.array([0.5, 0.5, 2.0]), np.array([0.5, 0.5, 0.0]), up=np.array([0, 1.0, 0])))
    [(image, mask)] = render(mesh, [camera])
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min() + 3, rows.max() - 3, cols.min() + 3, cols.max() - 3
    assert np.allclose(image[top, left], RED, atol=0.02) and np.allclose(image[top, right], GREEN, atol=0.02)
    assert np.allclose(image[bottom, left], BLUE, atol=0.02) and np.allclose(image[bottom, right], YELLOW, atol=0.02)


def test_glb_is_what_a_browser_viewer_expects(tmp_path):
    write_glb(four_corner_quad(), tmp_path / "quad.glb")
    assert check_glb(tmp_path / "quad.glb") == []
    document = glb_document(tmp_path / "quad.glb")
    [material] = document["materials"]
    pbr = material["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0 and pbr["roughnessFactor"] == 1 and "baseColorTexture" in pbr
    assert document["images"][0]["mimeType"] == "image/png"
    assert {"POSITION", "TEXCOORD_0", "NORMAL"} <= set(document["meshes"][0]["primitives"][0]["attributes"])
    # The vertex buffer is already in glTF's frame: no node moves it.
    assert all("matrix" not in node and "rotation" not in node for node in document["nodes"])
    # trimesh's default material, for contrast, is what TRAPS.md warns about: check_glb notices.
    plain = trimesh.Trimesh(*(lambda m: (m.vertices, m.faces))(four_corner_quad()), process=False)
    plain.visual = trimesh.visual.TextureVisuals(uv=np.zeros((4, 2)), image=Image.new("RGB", (2, 2)))
    plain.export(tmp_path / "plain.glb")
    assert any("metallic" in problem for problem in check_glb(tmp_path / "plain.glb"))


def test_glb_of_a_z_up_mesh_is_rotated_into_the_vertex_buffer(tmp_path):
    """write_glb(up=+z) stands the mesh up in glTF's +Y frame in the vertices themselves, the same
    rotation as Blender's: x stays, z becomes y, y becomes -z."""
    quad = four_corner_quad()
    write_glb(quad, tmp_path / "quad.glb", up=(0, 0, 1))
    assert np.allclose(up_to_gltf((0, 0, 1))[:3, :3] @ [0, 0, 1], [0, 1, 0])
    loaded = trimesh.load_scene(tmp_path / "quad.glb").to_geometry()
    x, y, z = quad.vertices.T
    expected = np.stack([x, z, -y], axis=1)
    assert np.allclose(np.unique(np.asarray(loaded.vertices), axis=0), np.unique(expected, axis=0))


def test_obj_set_has_white_diffuse_and_names_its_texture(tmp_path):
    write_obj(four_corner_quad(), tmp_path / "stylized.obj", texture_name="texture.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stylized.mtl", "stylized.obj", "texture.png"]
    material = (tmp_path / "stylized.mtl").read_text()
    assert "Kd 1 1 1" in material and "map_Kd texture.png" in material
    assert "mtllib stylized.mtl" in (tmp_path / "stylized.obj").read_text()


def test_failing_export_leaves_no_half_written_files(tmp_path, monkeypatch):
    import imageio.v3 as iio

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(iio, "imwrite", disk_full)   # the PNG is written after the OBJ and MTL
    with pytest.raises(OSError):
        write_obj(four_corner_quad(), tmp_path / "stylized.obj")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def noisy_ball(tmp_path_factory) -> TexturedMesh:
    """A ball on a fresh uvatlas atlas (unwrapped once for the module) with a noisy texture."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    scene = Scene("ball", np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int64))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESHSTYLE_CACHE", str(tmp_path_factory.mktemp("cache")))
        atlas = make_atlas(scene, 256, SceneConfig())
    texture = np.random.default_rng(0).random((256, 256, 3)).astype(np.float32)
    # Smooth the noise a little so that bilinear lookups are well defined at 8 bits.
    texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1) + np.roll(texture, 1, (0, 1))) / 4
    return TexturedMesh(scene.vertices, scene.faces, atlas.uv, texture)


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_export_reimport_render_matches_the_mesh_in_memory(tmp_path, noisy_ball, suffix):
    mesh = noisy_ball
    path = tmp_path / f"ball{suffix}"
    (write_glb if suffix == ".glb" else write_obj)(mesh, path)
    again = read_textured(path)
    assert np.allclose(again.vertices[again.faces], mesh.vertices[mesh.faces], atol=1e-6)
    assert np.allclose(again.uv, mesh.uv, atol=1e-6)
    cameras = [Camera(K=intrinsics_from_fov(96, 96, 45.0), width=96, height=96,
                      cam_to_world=look_at(eye, np.zeros(3))) for eye in ([2, 0, 0.5], [-1, 1.5, 0.3], [0, -1, -1.5])]
    for (expected, mask), (got, mask_again) in zip(render(mesh, cameras), render(again, cameras)):
        assert np.array_equal(mask, mask_again) and mask.mean() > 0.2
        assert psnr(expected[mask], got[mask]) >= 40


def test_read_textured_rebakes_several_textures_and_refuses_none(tmp_path, monkeypatch):
    monkeypatch.setenv("MESHSTYLE_CACHE", str(tmp_path / "cache"))
    graph = trimesh.Scene()
    for shift, colour in ((0, (255, 0, 0)), (2, (0, 0, 255))):
        quad = four_corner_quad()
        material = PBRMaterial(baseColorTexture=Image.new("RGB", (4, 4), colour), metallicFactor=0.0)
        graph.add_geometry(trimesh.Trimesh(quad.vertices + [shift, 0, 0], quad.faces, process=False,
                                           visual=trimesh.visual.TextureVisuals(uv=quad.vertices[:, :2], material=material)))
    graph.export(tmp_path / "two.glb")
    mesh = read_textured(tmp_path / "two.glb")
    assert mesh.texture.ndim == 3 and mesh.uv.shape == (4, 3, 2)
    centre_uv = mesh.uv.mean(axis=1)
    colours = sample_wrapped(mesh.texture, centre_uv)
    left = mesh.vertices[mesh.faces].mean(axis=1)[:, 0] < 1.5
    assert np.allclose(colours[left], RED, atol=0.01) and np.allclose(colours[~left], BLUE, atol=0.01)

    trimesh.creation.icosphere().export(tmp_path / "bare.glb")
    with pytest.raises(InputError, match="has no texture"):
        read_textured(tmp_path / "bare.glb")


def test_glb_round_trip_reads_back_the_output_frame(tmp_path):
    """Our GLB is an ordinary +Y-up glTF: reading it back gives the rotated vertices and up +Y."""
    from meshstyle.inputs.meshes import load_mesh_file

    quad = four_corner_quad()
    write_glb(quad, tmp_path / "quad.glb", up=(0, 0, 1))
    scene = load_mesh_file(tmp_path / "quad.glb")
    assert scene.up == (0.0, 1.0, 0.0)
    rotated = quad.vertices @ up_to_gltf((0, 0, 1))[:3, :3].T
    assert np.allclose(np.sort(scene.vertices, axis=0), np.sort(rotated, axis=0))
