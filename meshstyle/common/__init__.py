"""Stage-free helpers: atomic file writes and images, the on-disk cache, progress bars, numba kernels, allocator tuning."""
