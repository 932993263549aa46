"""The optimisation: Laplacian texture, VGG-19, losses, depth-split patches, photo content targets, the optimiser loop.

This package shares its name with the API function `ms.stylize`: importing it sets `meshstyle.stylize`
to the package, so the package itself can be called like the function (the README's `ms.stylize(...)`
works whichever was imported first).
"""
from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from meshstyle.pipeline import stylize

        return stylize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
