"""Shared data types and their maths, a leaf under every stage: Camera, Scene/Photo/View, per-face quantities, world axes."""
