"""UV atlas: unwrap (or keep the mesh's), pack, bake the mesh's own colours into the initial texture."""
