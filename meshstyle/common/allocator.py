"""glibc allocator settings for large numpy/torch temporaries.

Per-view arrays (a 640x480 float32 image is 1.2 MB) are above glibc's default mmap threshold, so
each one is a fresh mmap whose pages fault in on first touch and go back to the kernel on free.
Serving them from the heap and keeping freed memory lets the next view reuse warm pages:
measured on scripts/bench_raster.py, ray casting and fragments both ran ~20% faster.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def tune_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30,
                   top_pad: int = 64 << 20) -> bool:
    """Apply the settings once per process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, trim_threshold), (M_TOP_PAD, top_pad)))
