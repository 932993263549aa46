"""meshstyle: repaint the texture of a 3D mesh in the style of a painting."""
from __future__ import annotations

__version__ = "0.1.0"
