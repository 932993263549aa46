"""What a run reads: mesh files, scan folders (layouts, intrinsics, pose checks, up axis), style images, textured meshes."""
