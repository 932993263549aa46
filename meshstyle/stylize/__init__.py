"""The optimisation: Laplacian texture, VGG-19, losses, depth-split patches, photo content targets, the optimiser loop."""
import sys
import types


class _CallablePackage(types.ModuleType):
    """Calling this package is calling `pipeline.stylize`, the public `ms.stylize` (see meshstyle/__init__.py)."""

    def __call__(self, *args, **kwargs):
        from meshstyle.pipeline import stylize

        return stylize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
