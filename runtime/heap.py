"""Keep the C heap from holding on to large blocks that were freed (glibc only).

glibc serves a request of 128 KiB or more with a mapping of its own, returned to the
system on `free`, but it raises that threshold to the size of each such block freed (up
to 32 MiB). After onnxruntime frees its first large temporary, tensors of a few megabytes
come from the heap, where freed space stays resident and, fragmented between blocks still
in use, cannot serve the next large request: building a ResNet-50 session then leaves
150 MB resident that no one uses, and the peak grows by as much. Setting the threshold
(to glibc's own default) turns the raising off.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
DEFAULT_THRESHOLD = 128 * 1024  # glibc's initial threshold


def return_large_blocks(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Serve every allocation of `threshold` bytes or more with a mapping of its own, so
    that freeing it returns the memory at once; for the rest of the process. Returns
    whether it applies (glibc on Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return False
    except (ValueError, OSError):  # not glibc (musl has no such name)
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
