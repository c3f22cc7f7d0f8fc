"""Keep the C heap from holding on to large freed blocks while a session is built (glibc only).

glibc serves a request of 128 KiB or more with a mapping of its own, returned to the
system on `free`, but it raises that threshold to the size of each such block freed (up
to 32 MiB). Once onnxruntime has freed its first large temporary while building a
session, tensors of a few megabytes come from the heap, where freed space stays
resident and, fragmented between blocks still in use, cannot serve the next large
request: building a ResNet-50 session then peaks 50-100 MB higher. Pinning the threshold
at 128 KiB while a session is built avoids that; afterwards it is pinned where the
raising would have taken it, since a fresh mapping for every large NumPy temporary
(page faults on each) makes the reference interpreter twice as slow.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
LOW = 128 * 1024  # glibc's initial mmap threshold
HIGH = 32 * 2**20  # the most the raising reaches on 64-bit systems (it sets trimming to twice that)


@contextmanager
def large_blocks_returned() -> Iterator[bool]:
    """Within the block, every allocation of 128 KiB or more is a mapping of its own, given
    back at once when freed; after it, allocations up to 32 MiB come from the heap again.
    Yields whether this applies (glibc on Linux); the process keeps the fixed thresholds."""
    mallopt = _mallopt()
    if mallopt is None:
        yield False
        return
    mallopt(M_MMAP_THRESHOLD, LOW)
    try:
        yield True
    finally:
        mallopt(M_MMAP_THRESHOLD, HIGH)
        mallopt(M_TRIM_THRESHOLD, 2 * HIGH)


def _mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):  # not glibc (musl has no such name)
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt
