"""The optimisation: Laplacian texture, VGG-19, losses, depth-split patches, photo content targets, the optimiser loop."""
import sys as _sys
import types as _types


class _CallableStage(_types.ModuleType):
    """Importing this subpackage sets `meshstyle.stylize` to it, shadowing the API function
    `meshstyle.stylize(...)` (the package's lazy attribute): calls go on to work either way."""

    def __call__(self, *args, **kwargs):
        from meshstyle.pipeline import stylize

        return stylize(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableStage
