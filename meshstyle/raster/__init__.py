"""Ray-cast view fragments (UV, depth, normal, view angle, mask) per camera and pyramid level, cached on disk."""
