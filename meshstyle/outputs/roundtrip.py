"""`meshstyle export` of a textured file made elsewhere, without resampling anything.

A run folder holds one stylized mesh and is written by export.py. A GLB/glTF/OBJ from another tool
may hold several meshes, nodes and materials: re-baking it into one fresh atlas (what rendering
does) would blur its texels. Here the file's own scene graph is kept instead:

- GLB out: the trimesh scene as loaded (node hierarchy and transforms, meshes, per-vertex UVs,
  every material) with the output-frame rotation put on the root; images are embedded as PNG
  from their decoded pixels, so texels survive bit for bit (trimesh would re-encode a JPEG).
- OBJ out: every node's mesh with its world transform applied, one `usemtl` group per material,
  each material's image as its own PNG (`<stem>_<n>.png`).

The output frame is glTF's (+Y up, metres); an input's own up axis follows its format (geometry/frames.py),
so a glTF or OBJ keeps its coordinates exactly and a PLY is turned from +Z up to +Y up.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from meshstyle.errors import InputError
from meshstyle.geometry.frames import transform_points, up_to_gltf
from meshstyle.common.io import atomic_path

_IMAGE_SLOTS = ("baseColorTexture", "metallicRoughnessTexture", "normalTexture", "occlusionTexture",
                "emissiveTexture")


def _load(path: Path):
    import trimesh

    try:
        scene = trimesh.load_scene(path, process=False)
    except Exception as exc:  # trimesh raises many types for corrupt files
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot read {path.suffix.lower()[1:].upper()} file: {detail}") from None
    textured = [geometry for geometry in scene.geometry.values() if _image_of(geometry) is not None]
    if not textured:
        raise InputError(path, "has no texture (expected a base-colour texture with UVs)")
    return scene


def _image_of(geometry):
    """A geometry's base-colour image (PIL) when it has one and UVs for every vertex."""
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    visual = getattr(geometry, "visual", None)
    if not isinstance(visual, TextureVisuals) or visual.material is None or visual.uv is None:
        return None
    material = visual.material
    image = material.baseColorTexture if isinstance(material, PBRMaterial) else getattr(material, "image", None)
    return image if image is not None and len(visual.uv) == len(geometry.vertices) else None


def _lossless(image):
    """A PIL image that trimesh's exporter writes as PNG (it re-encodes anything that says JPEG)."""
    from PIL import Image

    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "transparency" in image.info or "A" in image.mode else "RGB")
    return Image.fromarray(np.asarray(image))


def _pbr(material):
    """The material as glTF PBR with lossless images. An MTL's Kd beside its map_Kd is left out,
    as when reading (inputs/meshes.py): the texture is the colour; plain diffuse, not metallic."""
    from trimesh.visual.material import PBRMaterial

    if isinstance(material, PBRMaterial):
        material = material.copy()
        for slot in _IMAGE_SLOTS:
            image = getattr(material, slot, None)
            if image is not None and hasattr(image, "mode"):
                setattr(material, slot, _lossless(image))
        return material
    image = getattr(material, "image", None)
    return PBRMaterial(name=getattr(material, "name", None) or "material",
                       baseColorTexture=_lossless(image) if image is not None else None,
                       baseColorFactor=[255, 255, 255, 255], metallicFactor=0.0, roughnessFactor=1.0)


def input_up(path: str | Path) -> tuple[float, float, float]:
    from meshstyle.inputs.meshes import file_up

    return file_up(path)


def export_glb(source: str | Path, out: str | Path) -> None:
    """`source`'s scene graph, materials and texels as a GLB in the output frame."""
    from trimesh.visual import TextureVisuals

    source = Path(source)
    scene = _load(source)
    for geometry in scene.geometry.values():
        visual = getattr(geometry, "visual", None)
        if isinstance(visual, TextureVisuals) and visual.material is not None:
            geometry.visual = TextureVisuals(uv=visual.uv, material=_pbr(visual.material))
    rotation = up_to_gltf(input_up(source))
    if not np.array_equal(rotation, np.eye(4)):
        scene.apply_transform(rotation)
    data = scene.export(file_type="glb")
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


def export_obj(source: str | Path, out: str | Path, frame: str = "output") -> None:
    """`source`'s meshes (node transforms applied) as OBJ + MTL + one PNG per material."""
    import imageio.v3 as iio

    source, out = Path(source), Path(out)
    scene = _load(source)
    rotation = up_to_gltf(input_up(source)) if frame == "output" else np.eye(4)
    material_path = out.with_suffix(".mtl")
    text = io.StringIO()
    text.write(f"# meshstyle export of {source.name}\nmtllib {material_path.name}\n")
    materials: dict[int, tuple[str, str, np.ndarray | None, np.ndarray]] = {}   # id -> name, png, pixels, colour
    offset = 0
    for node in scene.graph.nodes_geometry:
        transform, geometry_name = scene.graph[node]
        geometry = scene.geometry[geometry_name]
        if not hasattr(geometry, "faces") or len(geometry.faces) == 0:
            continue
        positions = transform_points(rotation @ transform, geometry.vertices)
        image = _image_of(geometry)
        material = getattr(geometry.visual, "material", None)
        key = id(material) if material is not None else -1
        if key not in materials:
            index = len(materials)
            name = f"material_{index}"
            pixels = np.asarray(_lossless(image)) if image is not None else None
            colour = _mean_colour(geometry)
            materials[key] = (name, f"{out.stem}_{index}.png" if pixels is not None else "", pixels, colour)
        name, _, pixels, _ = materials[key]
        np.savetxt(text, positions, fmt="v %.9g %.9g %.9g")
        faces = np.asarray(geometry.faces, dtype=np.int64) + offset + 1
        if pixels is not None:
            np.savetxt(text, np.asarray(geometry.visual.uv, dtype=np.float64), fmt="vt %.9g %.9g")
            text.write(f"usemtl {name}\n")
            np.savetxt(text, np.repeat(faces, 2, axis=1), fmt="f %d/%d %d/%d %d/%d")
        else:
            text.write(f"usemtl {name}\n")
            np.savetxt(text, faces, fmt="f %d %d %d")
            # Faces without UVs must not pick up the running vt numbering of textured parts.
        offset += len(geometry.vertices)
    # vt indices run with v indices only when every part has UVs; renumber otherwise.
    body = text.getvalue() if all(m[2] is not None for m in materials.values()) else _renumber_uvs(text.getvalue())

    library = io.StringIO()
    for name, png, pixels, colour in materials.values():
        library.write(f"newmtl {name}\nKa 1 1 1\n")
        library.write("Kd 1 1 1\n" if png else f"Kd {colour[0]:.6g} {colour[1]:.6g} {colour[2]:.6g}\n")
        library.write("Ks 0 0 0\nNs 1\nd 1\nillum 1\n" + (f"map_Kd {png}\n" if png else "") + "\n")
    with contextlib.ExitStack() as stack:
        targets = [out, material_path] + [out.parent / png for _, png, pixels, _ in materials.values() if png]
        temporaries = [stack.enter_context(atomic_path(target)) for target in targets]
        temporaries[0].write_text(body)
        temporaries[1].write_text(library.getvalue())
        images = [pixels for _, png, pixels, _ in materials.values() if png]
        for tmp, pixels in zip(temporaries[2:], images):
            iio.imwrite(tmp, pixels, extension=".png")


def _mean_colour(geometry) -> np.ndarray:
    colours = getattr(getattr(geometry, "visual", None), "vertex_colors", None)
    if colours is None or len(colours) == 0:
        return np.full(3, 0.5)
    return np.asarray(colours, dtype=np.float64)[:, :3].mean(axis=0) / 255.0


def _renumber_uvs(body: str) -> str:
    """Faces of textured parts index vt lines counted separately from v lines."""
    lines, out = body.splitlines(), []
    vertex_count, uv_count, part_vertex_start, part_uv_start = 0, 0, 0, 0
    previous = ""
    for line in lines:
        if line.startswith("v ") and not previous.startswith("v "):
            part_vertex_start, part_uv_start = vertex_count, uv_count
        if line.startswith("v "):
            vertex_count += 1
        elif line.startswith("vt "):
            uv_count += 1
        elif line.startswith("f ") and "/" in line:
            corners = []
            for corner in line.split()[1:]:
                vertex, _uv = corner.split("/")
                corners.append(f"{vertex}/{int(vertex) - part_vertex_start + part_uv_start}")
            line = "f " + " ".join(corners)
        out.append(line)
        previous = line
    return "\n".join(out) + "\n"
