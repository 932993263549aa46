"""`meshstyle export` of textured files made elsewhere reproduces them: same geometry in the same
frame, same texels, same materials, node transforms kept. Assets are built here with trimesh and
numpy; the reference renders come from the construction arrays, not from our readers."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import trimesh
from PIL import Image
from trimesh.visual.material import PBRMaterial

from meshstyle.views.cameras import orbit
from meshstyle.cli import main
from meshstyle.outputs.render import psnr, render_views
from meshstyle.outputs.run_folder import load_result
from meshstyle.geometry.scene import Scene, TexturedMesh


def textured_cube() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit cube with 4 own vertices per side, its six sides laid out 3 x 2 in UV:
    (vertices (24,3), faces (12,3), uv (24,2))."""
    vertices, faces, uv = [], [], []
    for side, (axis, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)]):
        u_axis, v_axis = [a for a in range(3) if a != axis]
        corners = []
        for a, b in [(0, 0), (1, 0), (1, 1), (0, 1)]:
            point = np.zeros(3)
            point[axis] = 0.5 * sign
            point[u_axis], point[v_axis] = a - 0.5, b - 0.5
            corners.append(point)
        base = len(vertices)
        vertices += corners
        cell_u, cell_v = side % 3, side // 3
        uv += [((cell_u + 0.05 + 0.9 * a) / 3, (cell_v + 0.05 + 0.9 * b) / 2) for a, b in [(0, 0), (1, 0), (1, 1), (0, 1)]]
        quad = [[base, base + 1, base + 2], [base, base + 2, base + 3]]
        # Outward winding: the normal of (1,0)-(0,0) x (0,1)-(0,0) is u x v; flip when it points in.
        normal = np.cross(corners[1] - corners[0], corners[3] - corners[0])
        if normal[axis] * sign < 0:
            quad = [[q[0], q[2], q[1]] for q in quad]
        faces += quad
    return np.array(vertices), np.array(faces), np.array(uv)


def texture_image(seed: int, size: tuple[int, int] = (96, 64)) -> np.ndarray:
    """Blocky random colours: any shifted texel or resampling shows."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)


def reference(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> TexturedMesh:
    """Parts (world vertices, faces, per-vertex uv, uint8 texture) sharing one texture, as one mesh."""
    offsets = np.cumsum([0] + [len(p[0]) for p in parts])
    vertices = np.concatenate([p[0] for p in parts])
    faces = np.concatenate([p[1] + offset for p, offset in zip(parts, offsets)])
    uv = np.concatenate([p[2][p[1]] for p in parts]).astype(np.float32)
    return TexturedMesh(vertices, faces, uv, parts[0][3].astype(np.float32) / 255)


def views(mesh: TexturedMesh):
    scene = Scene(name="ref", vertices=mesh.vertices, faces=mesh.faces, up=(0.0, 1.0, 0.0))
    return orbit(scene, 6, width=160, height=120)


def rendered_psnr(expected: TexturedMesh, actual: TexturedMesh) -> float:
    cameras = views(expected)
    return min(psnr(a, b) for a, b in zip(render_views(expected, cameras, cache=False),
                                          render_views(actual, cameras, cache=False)))


def write_textured_obj(folder, parts, names: list[str], image_suffix: str = ".jpg"):
    """OBJ + MTL + one image per part (a material each when names differ)."""
    lines, library, written = ["mtllib model.mtl"], [], set()
    offset = 0
    for (vertices, faces, uv, pixels), name in zip(parts, names):
        lines += [f"v {float(x)!r} {float(y)!r} {float(z)!r}" for x, y, z in vertices]
        lines += [f"vt {float(u)!r} {float(v)!r}" for u, v in uv]
        lines.append(f"usemtl {name}")
        lines += ["f " + " ".join(f"{i + offset + 1}/{i + offset + 1}" for i in face) for face in faces]
        offset += len(vertices)
        if name not in written:
            written.add(name)
            iio.imwrite(folder / f"{name}{image_suffix}", pixels, **({"quality": 90} if image_suffix == ".jpg" else {}))
            library += [f"newmtl {name}", "Kd 0.8 0.8 0.8", f"map_Kd {name}{image_suffix}", ""]
    (folder / "model.obj").write_text("\n".join(lines) + "\n")
    (folder / "model.mtl").write_text("\n".join(library))
    return folder / "model.obj"


def test_textured_obj_with_jpeg_round_trips_exactly(tmp_path):
    vertices, faces, uv = textured_cube()
    path = write_textured_obj(tmp_path, [(vertices, faces, uv, texture_image(0))], ["paint"])
    decoded = iio.imread(tmp_path / "paint.jpg")             # what the input shows: the decoded JPEG
    expected = reference([(vertices, faces, uv, decoded)])
    for fmt in ("glb", "obj"):
        out = tmp_path / f"out.{fmt}"
        assert main(["export", str(path), "--format", fmt, "--out", str(out)]) == 0
        exported = load_result(out).mesh
        assert rendered_psnr(expected, exported) >= 40.0
        assert np.array_equal((exported.texture * 255).round().astype(np.uint8), decoded)   # texels bit for bit
    document_images = trimesh.load_scene(tmp_path / "out.glb").geometry
    [geometry] = document_images.values()
    assert np.array_equal(np.asarray(geometry.visual.material.baseColorTexture.convert("RGB")), decoded)


def test_multi_node_gltf_keeps_its_node_transforms(tmp_path):
    vertices, faces, uv = textured_cube()
    pixels = texture_image(1)
    material = PBRMaterial(baseColorTexture=Image.fromarray(pixels), baseColorFactor=[255, 255, 255, 255],
                           metallicFactor=0.0, roughnessFactor=1.0)
    cube = trimesh.Trimesh(vertices, faces, process=False, visual=trimesh.visual.TextureVisuals(uv=uv, material=material))
    T = trimesh.transformations
    root = T.translation_matrix((0.5, 0.2, -0.3)) @ T.rotation_matrix(0.4, (0, 1, 0))
    left = T.translation_matrix((-1.2, 0, 0)) @ T.rotation_matrix(0.7, (1, 0, 0))
    right = T.translation_matrix((1.2, 0.3, 0)) @ T.scale_matrix(0.6)
    nested = T.translation_matrix((0, 1.1, 0)) @ T.rotation_matrix(0.9, (0, 0, 1))
    scene = trimesh.Scene()
    scene.graph.update(frame_to="root", frame_from=scene.graph.base_frame, matrix=root)
    scene.add_geometry(cube, node_name="left", geom_name="cube", parent_node_name="root", transform=left)
    scene.add_geometry(cube, node_name="right", geom_name="cube", parent_node_name="root", transform=right)
    scene.add_geometry(cube, node_name="nested", geom_name="cube", parent_node_name="right", transform=nested)
    source = tmp_path / "nodes.glb"
    source.write_bytes(scene.export(file_type="glb"))

    placed = [trimesh.transform_points(vertices, matrix) for matrix in (root @ left, root @ right, root @ right @ nested)]
    expected = reference([(points, faces, uv, pixels) for points in placed])
    assert rendered_psnr(expected, load_result(source).mesh) >= 40.0      # we read the input right
    out = tmp_path / "out.glb"
    assert main(["export", str(source), "--format", "glb", "--out", str(out)]) == 0
    assert rendered_psnr(expected, load_result(out).mesh) >= 40.0
    given, exported = trimesh.load_scene(source), trimesh.load_scene(out)
    assert len(exported.graph.nodes_geometry) == len(given.graph.nodes_geometry) == 3
    for node in given.graph.nodes_geometry:                 # each node keeps its own transform
        assert np.allclose(exported.graph[node][0], given.graph[node][0], atol=1e-7)
    assert main(["export", str(source), "--format", "obj", "--out", str(tmp_path / "out.obj")]) == 0
    assert rendered_psnr(expected, load_result(tmp_path / "out.obj").mesh) >= 40.0


def test_multi_material_obj_keeps_its_materials_and_texels(tmp_path):
    vertices, faces, uv = textured_cube()
    first, second = texture_image(2), texture_image(3, size=(64, 64))
    path = write_textured_obj(tmp_path, [(vertices, faces, uv, first), (vertices + (2.0, 0, 0), faces, uv, second)],
                              ["wood", "stone"], image_suffix=".png")
    out = tmp_path / "out.glb"
    assert main(["export", str(path), "--format", "glb", "--out", str(out)]) == 0
    images = sorted((np.asarray(g.visual.material.baseColorTexture.convert("RGB")) for g in
                     trimesh.load_scene(out).geometry.values()), key=lambda image: image.shape)
    assert len(images) == 2
    assert np.array_equal(images[0], second) and np.array_equal(images[1], first)
    obj = tmp_path / "copy.obj"
    assert main(["export", str(path), "--format", "obj", "--out", str(obj)]) == 0
    library = (tmp_path / "copy.mtl").read_text()
    assert library.count("newmtl") == 2
    textures = [line.split()[1] for line in library.splitlines() if line.startswith("map_Kd")]
    assert sorted(iio.imread(tmp_path / name).shape for name in textures) == sorted([first.shape, second.shape])
    reloaded = trimesh.load_scene(obj, process=False)
    assert len(reloaded.geometry) == 2


def test_reunwrap_resamples_only_when_asked(tmp_path):
    vertices, faces, uv = textured_cube()
    path = write_textured_obj(tmp_path, [(vertices, faces, uv, texture_image(4))], ["paint"], image_suffix=".png")
    assert main(["export", str(path), "--format", "glb", "--out", str(tmp_path / "kept.glb")]) == 0
    assert main(["export", str(path), "--format", "glb", "--reunwrap", "--out", str(tmp_path / "new.glb")]) == 0
    kept, new = load_result(tmp_path / "kept.glb").mesh, load_result(tmp_path / "new.glb").mesh
    # glTF stores 1 - v in float32: equal to a few ulps, not bit for bit.
    assert np.allclose(kept.uv, load_result(path).mesh.uv, atol=1e-7)
    assert not np.allclose(new.uv, kept.uv, atol=1e-3)


@pytest.mark.parametrize("suffix", [".ply"])
def test_z_up_textured_file_exports_y_up(tmp_path, suffix):
    """A PLY is Z-up (frames.py): its GLB stands it up in glTF's +Y."""
    vertices, faces, uv = textured_cube()
    tall = vertices * (0.2, 0.2, 1.0)                          # tall along z
    mesh = trimesh.Trimesh(tall, faces, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(texture_image(5))))
    mesh.export(tmp_path / f"tall{suffix}")
    # PLY keeps no texture in trimesh: export refuses, naming the file.
    assert main(["export", str(tmp_path / f"tall{suffix}"), "--format", "glb"]) == 2
