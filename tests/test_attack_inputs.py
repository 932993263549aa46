"""Attack: inputs as they come from the wild, and caches whose entries lie.

Style images in CMYK (Adobe's inverted JPEGs), palette, 16-bit and grey+alpha come out in the
right colours; truncated or misnamed meshes are reported by content; a transforms.json reaching
outside its folder warns; well-formed cache entries with wrong content are rejected, not used.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from meshstyle.common.io import IMAGE_BACKGROUND, read_image
from meshstyle.errors import InputError
from meshstyle.inputs.meshes import load_mesh_file
from reliability_tools import error_line, run_cli

RED = (255, 0, 0)


# --------------------------------------------------------------------------- style images


def test_cmyk_jpeg_red_stays_red(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(path, quality=95)   # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    pixels = read_image(path)
    assert pixels.shape == (24, 32, 3)
    np.testing.assert_allclose(pixels.mean(axis=(0, 1)), [1.0, 0.0, 0.0], atol=0.03)


def test_sixteen_bit_png_keeps_its_values(tmp_path):
    import imageio.v3 as iio

    grey = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    iio.imwrite(tmp_path / "grey16.png", grey)
    pixels = read_image(tmp_path / "grey16.png")
    np.testing.assert_allclose(pixels[..., 0], grey / 65535.0, atol=1e-4)
    assert np.array_equal(pixels[..., 0], pixels[..., 2])
    rgb = np.zeros((8, 8, 3), np.uint16)
    rgb[..., 0] = 65535
    rgb[..., 2] = 32768
    _write_png16(tmp_path / "rgb16.png", rgb)
    np.testing.assert_allclose(read_image(tmp_path / "rgb16.png")[0, 0], [1.0, 0.0, 0.5], atol=0.01)


def _write_png16(path, rgb: np.ndarray) -> None:
    """A 48-bit RGB PNG (Pillow cannot write one): signature, IHDR, one IDAT, IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[row].astype(">u2").tobytes() for row in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_palette_png_with_transparency_is_composited_on_the_background(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.save(tmp_path / "palette.png", transparency=1)
    pixels = read_image(tmp_path / "palette.png")
    np.testing.assert_allclose(pixels[1, 1], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(pixels[0, 0], IMAGE_BACKGROUND, atol=1e-6)   # transparent, not black


def test_grey_with_alpha_is_composited_on_the_background(tmp_path):
    grey_alpha = np.zeros((6, 6, 2), np.uint8)
    grey_alpha[..., 0] = 0          # black ...
    grey_alpha[:3, :, 1] = 255      # ... opaque in the top half, fully transparent below
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.png")
    pixels = read_image(tmp_path / "la.png")
    np.testing.assert_allclose(pixels[0, 0], [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(pixels[5, 5], IMAGE_BACKGROUND, atol=1e-6)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 20, b"GIF89a", b"just text"])
def test_broken_images_are_one_line_errors(tmp_path, content):
    path = tmp_path / "style.png"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_image(path)
    assert "style.png" in str(caught.value) and "\n" not in str(caught.value)


def test_truncated_png_is_an_error(tmp_path):
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_image(tmp_path / "a.png")


# --------------------------------------------------------------------------- meshes

TETRA = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"


@pytest.mark.parametrize("cut", [len(TETRA) - 3, TETRA.index("v 0 0 1") + 5])
def test_truncated_obj_is_reported(tmp_path, cut):
    path = tmp_path / "mesh.obj"
    path.write_text(TETRA[:cut])
    with pytest.raises(InputError, match="truncated"):
        load_mesh_file(path)


def test_obj_faces_naming_missing_vertices_are_reported(tmp_path):
    path = tmp_path / "mesh.obj"
    path.write_text(TETRA + "f 1 2 9\n")
    with pytest.raises(InputError, match="no existing vertex"):
        load_mesh_file(path)


def test_ply_named_obj_gets_a_message_about_its_content(tmp_path):
    import trimesh

    path = tmp_path / "scan.obj"
    path.write_bytes(trimesh.creation.box().export(file_type="ply"))
    done = run_cli("stylize", path, "--style", "circles", "--out", tmp_path / "run", timeout=120)
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert "is a PLY file named .obj" in line and "scan.ply" in line
    assert not (tmp_path / "run").exists()


def test_transforms_json_reaching_outside_its_folder_warns(tmp_path, capsys):
    from meshstyle.inputs.scans import load_scan

    import trimesh

    folder = tmp_path / "scan"
    folder.mkdir()
    trimesh.creation.box(extents=(4, 4, 3)).export(folder / "room.ply")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (40, 30), (90, 120, 150)).save(outside / "0.png")
    pose = np.eye(4)
    frames = [{"file_path": "../elsewhere/0.png", "transform_matrix": pose.tolist()}]
    (folder / "transforms.json").write_text(json.dumps({"camera_angle_x": 1.0, "frames": frames}))
    try:
        load_scan(folder)
    except InputError:
        pass   # whatever else a one-frame scan lacks, the warning comes first
    err = capsys.readouterr().err
    assert "1 of 1 frames point outside its folder" in err


# --------------------------------------------------------------------------- lying cache entries


@pytest.fixture()
def small_view(tmp_path):
    import trimesh

    from meshstyle.atlas.unwrap import project_charts
    from meshstyle.raster.rasterizer import Rasterizer
    from meshstyle.views.cameras import intrinsics_from_fov, look_at, Camera

    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    vertices, faces = np.asarray(box.vertices, float), np.asarray(box.faces, np.int64)
    uv = project_charts(vertices, faces, 64)
    camera = Camera(K=intrinsics_from_fov(40, 30, 60), cam_to_world=look_at(np.array([2.0, 1.5, 1.0]), np.zeros(3)),
                    width=40, height=30)
    return Rasterizer(vertices, faces, uv), camera, tmp_path / "cache"


def test_fragment_cache_entry_with_out_of_range_faces_is_recomputed(small_view):
    from meshstyle.raster.rasterizer import view_pyramids

    rasterizer, camera, cache = small_view
    fresh = view_pyramids(rasterizer, [camera], [30], cache_dir=cache)[0]
    (entry,) = (cache / "fragments").glob("*.npz")
    with np.load(entry) as stored:
        arrays = {name: stored[name].copy() for name in stored.files}
    arrays["face_id0"][arrays["face_id0"] >= 0] = 10**6          # well-formed, wrong content
    with open(entry, "wb") as handle:
        np.savez(handle, **arrays)
    again = view_pyramids(rasterizer, [camera], [30], cache_dir=cache)[0]
    for a, b in zip(fresh.levels, again.levels):
        assert np.array_equal(a.face_id.numpy(), b.face_id.numpy())
        assert np.array_equal(a.uv.numpy(), b.uv.numpy())
    with np.load(entry) as stored:
        assert int(stored["face_id0"].max()) < len(rasterizer.faces)   # the entry was rewritten


def test_render_cache_entry_with_negative_faces_is_recomputed(small_view):
    from meshstyle.geometry.scene import TexturedMesh
    from meshstyle.outputs.render import render_views

    rasterizer, camera, cache = small_view
    texture = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    mesh = TexturedMesh(rasterizer.vertices, rasterizer.faces, rasterizer.uv, texture)
    fresh = list(render_views(mesh, [camera], cache_dir=cache))[0]
    (entry,) = (cache / "render").glob("*.npy")
    faces = np.load(entry)
    np.save(entry, np.where(faces >= 0, -7, faces).astype(np.int32))
    again = list(render_views(mesh, [camera], cache_dir=cache))[0]
    assert np.array_equal(fresh, again)


def test_atlas_cache_entry_for_another_mesh_is_not_used(tmp_path, monkeypatch):
    import trimesh

    from meshstyle.atlas import unwrap
    from meshstyle.geometry.scene import Scene

    monkeypatch.setenv("MESHSTYLE_CACHE", str(tmp_path / "cache"))
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    scene = Scene(name="box", vertices=np.asarray(box.vertices, float), faces=np.asarray(box.faces, np.int64))
    first = unwrap.make_atlas(scene, 64)
    (entry,) = (tmp_path / "cache" / "atlas").glob("*.npz")
    with open(entry, "wb") as handle:   # right keys and types, wrong face count and range
        np.savez(handle, uv=np.full((3, 3, 2), 7.0, np.float32), size=64, charts=1, utilisation=0.5,
                 texels_per_metre=1.0, method="projected")
    second = unwrap.make_atlas(scene, 64)
    assert second.uv.shape == first.uv.shape and not second.cached
    assert 0.0 <= second.uv.min() and second.uv.max() <= 1.0
