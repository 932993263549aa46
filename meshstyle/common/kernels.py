"""Compiled per-pixel loops (numba): how they are compiled, threaded and launched.

Per-pixel work written as whole-array numpy makes one pass over memory per operation; the
footprint alone is ~40 of them, and the fragments of a 640x480 view cost 12 ms against 17 ms for
casting its rays. `parallel_kernel` compiles a plain Python loop once (cached on disk beside the
source, or in numba's user cache where that is read-only) into one pass over the pixels, with
`prange` loops split over all cores.

Threading: numba's `workqueue` layer unless NUMBA_THREADING_LAYER says otherwise. Its threads
sleep between launches; OpenMP's spin for a while after each kernel and took the cores from
Embree's ray casting that follows (demo-room, 640x480: 21 ms per cast instead of 17 ms), and
numba refuses TBB next to the older TBB that open3d loads. `workqueue` aborts the whole process
when two threads launch kernels at once (a launch releases the GIL), so launches take a lock:
rendering from several threads stays correct (tests/test_render.py does it).
"""
from __future__ import annotations

import functools
import os
import threading
from typing import Callable

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

prange = numba.prange
_LAUNCH = threading.Lock()


def parallel_kernel(loop: Callable | None = None, *, fastmath: bool = False) -> Callable:
    """`loop` compiled by numba on first call, its `prange` loops run on all cores; one launch at
    a time in the process. `@parallel_kernel` or `@parallel_kernel(fastmath=True)` (for loops
    whose inputs are always finite: LLVM may then reorder float arithmetic)."""
    if loop is None:
        return functools.partial(parallel_kernel, fastmath=fastmath)
    compiled = numba.njit(cache=True, parallel=True, fastmath=fastmath)(loop)

    @functools.wraps(loop)
    def launch(*args):
        with _LAUNCH:
            return compiled(*args)

    return launch


def kernel_helper(function: Callable) -> Callable:
    """A function that kernels call per pixel (compiled, inlined into them by LLVM)."""
    return numba.njit(cache=True)(function)
