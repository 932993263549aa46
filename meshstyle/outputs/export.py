"""Textured meshes to GLB and OBJ+MTL+PNG, and back.

Per-corner UVs become glTF/OBJ vertices by splitting every vertex once per distinct UV it carries
(at UV seams), so a re-import yields the same triangles, positions and UVs.

glTF is +y up, meshstyle scenes are +z up: the GLB keeps our coordinates in its vertex buffer and puts
the rotation into its root node, so viewers show the scene upright, and records our up axis in the scene
extras so that `load_mesh_file` undoes the rotation exactly.
"""
from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path

import numpy as np

from meshstyle.errors import InputError
from meshstyle.common.io import atomic_path, to_uint8
from meshstyle.geometry.axes import Z_UP, up_to_gltf
from meshstyle.geometry.scene import TexturedMesh
from meshstyle.geometry.mesh import corner_cross

MATERIAL_NAME = "stylized"


def split_uv_seams(faces: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices that carry one UV each: (new faces (F,3), source vertex (N,), uv (N,2))."""
    corner_vertex = faces.reshape(-1).astype(np.int64)
    corner_uv = np.ascontiguousarray(uv.reshape(-1, 2), dtype=np.float32)
    uv_bits = corner_uv.view(np.uint32).astype(np.int64)              # exact: no tolerance needed
    keys = np.stack([corner_vertex, uv_bits[:, 0], uv_bits[:, 1]], axis=1)
    _, first, new_index = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return new_index.reshape(-1, 3), corner_vertex[first], corner_uv[first]


def _trimesh_of(mesh: TexturedMesh):
    import trimesh
    from PIL import Image
    from trimesh.visual.material import PBRMaterial

    faces, source_vertex, uv = split_uv_seams(np.asarray(mesh.faces), np.asarray(mesh.uv))
    # Normals come from the welded mesh, so shading stays smooth across UV seams; without them
    # viewers shade every triangle flat.
    normals = vertex_normals(np.asarray(mesh.vertices), np.asarray(mesh.faces))[source_vertex]
    # trimesh's default material exports dark and metallic (docs/TRAPS.md): a plain diffuse one instead.
    material = PBRMaterial(name=MATERIAL_NAME, baseColorTexture=Image.fromarray(to_uint8(mesh.texture)),
                           baseColorFactor=[255, 255, 255, 255], metallicFactor=0.0, roughnessFactor=1.0,
                           doubleSided=True)
    return trimesh.Trimesh(vertices=np.asarray(mesh.vertices, dtype=np.float64)[source_vertex], faces=faces,
                           vertex_normals=normals, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv, material=material))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V,3); vertices without faces get +z."""
    corners = vertices[faces]
    face_normal = corner_cross(corners)   # length = 2 area
    summed = np.zeros_like(vertices, dtype=np.float64)
    for axis in range(3):
        summed[:, axis] = np.bincount(faces.ravel(), np.repeat(face_normal[:, axis], 3), minlength=len(vertices))
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    return np.where(length > 0, summed / np.maximum(length, 1e-30), [0.0, 0.0, 1.0])


def write_glb(mesh: TexturedMesh, path: str | Path, up: tuple[float, float, float] = Z_UP) -> None:
    """Binary glTF with the texture embedded as PNG in a PBR material (metallic 0, roughness 1)."""
    import trimesh

    scene = trimesh.Scene()
    scene.add_geometry(_trimesh_of(mesh), node_name="mesh", geom_name="mesh", transform=up_to_gltf(up))
    scene.metadata["meshstyle"] = {"up": [float(value) for value in up]}
    data = scene.export(file_type="glb")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_obj(mesh: TexturedMesh, path: str | Path, texture_name: str = "texture.png") -> None:
    """OBJ + MTL (`Kd 1 1 1`, `map_Kd <texture_name>`) + the PNG beside it; all three or none appear."""
    import imageio.v3 as iio

    path = Path(path)
    material_path = path.with_suffix(".mtl")
    texture_path = path.parent / texture_name
    faces, source_vertex, uv = split_uv_seams(np.asarray(mesh.faces), np.asarray(mesh.uv))
    positions = np.asarray(mesh.vertices, dtype=np.float64)[source_vertex]

    text = io.StringIO()
    text.write(f"# meshstyle\nmtllib {material_path.name}\n")
    np.savetxt(text, positions, fmt="v %.7g %.7g %.7g")
    np.savetxt(text, uv, fmt="vt %.8g %.8g")
    text.write(f"usemtl {MATERIAL_NAME}\n")
    # Vertex i carries UV i, so both indices of a corner are the same (1-based).
    corner = np.repeat(faces + 1, 2, axis=1)
    np.savetxt(text, corner, fmt="f %d/%d %d/%d %d/%d")
    material = (f"newmtl {MATERIAL_NAME}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nNs 1\nd 1\nillum 1\n"
                f"map_Kd {texture_name}\n")

    # Every file goes to a temporary name first; the renames happen only when all three are written.
    with contextlib.ExitStack() as stack:
        obj_tmp, mtl_tmp, png_tmp = (stack.enter_context(atomic_path(target))
                                     for target in (path, material_path, texture_path))
        obj_tmp.write_text(text.getvalue())
        mtl_tmp.write_text(material)
        iio.imwrite(png_tmp, to_uint8(mesh.texture), extension=".png")


def glb_document(path: str | Path) -> dict:
    """The JSON chunk of a GLB file (what a glTF viewer reads first)."""
    data = Path(path).read_bytes()
    if len(data) < 20 or data[:4] != b"glTF":
        raise InputError(path, "not a binary glTF file")
    json_length, chunk_type = struct.unpack("<II", data[12:20])
    if chunk_type != 0x4E4F534A:  # "JSON"
        raise InputError(path, "GLB does not start with a JSON chunk")
    return json.loads(data[20:20 + json_length])


def check_glb(path: str | Path) -> list[str]:
    """Problems a browser viewer would have with a GLB we wrote (empty when there are none)."""
    document = glb_document(path)
    problems = []
    if document.get("asset", {}).get("version") != "2.0":
        problems.append("asset.version is not 2.0")
    materials = document.get("materials", [])
    if not materials:
        problems.append("no material")
    for index, material in enumerate(materials):
        pbr = material.get("pbrMetallicRoughness", {})
        if pbr.get("metallicFactor", 1.0) != 0:
            problems.append(f"material {index} is metallic (metallicFactor missing or not 0)")
        if "baseColorTexture" not in pbr:
            problems.append(f"material {index} has no baseColorTexture")
        if any(abs(value - 1.0) > 1e-6 for value in pbr.get("baseColorFactor", [1, 1, 1, 1])):
            problems.append(f"material {index} darkens its texture (baseColorFactor not white)")
    for index, image in enumerate(document.get("images", [])):
        if image.get("mimeType") != "image/png" or "bufferView" not in image:
            problems.append(f"image {index} is not an embedded PNG")
    for mesh in document.get("meshes", []):
        for primitive in mesh.get("primitives", []):
            if "TEXCOORD_0" not in primitive.get("attributes", {}):
                problems.append("a primitive has no TEXCOORD_0")
    return problems
