"""Resource guards: checked before anything is allocated, so a typo like `dense(10**12)`
or a runaway `for` is a located error instead of an out-of-memory kill."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

COMPILE_PEAK_FACTOR = 5  # compiling holds ~4x the parameter bytes at its peak (VGG-16), plus slack


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the cgroup limit (containers, CI) or the
    physical memory, whichever is smaller; None when neither can be told."""
    found = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        found.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()  # noqa: SIM115 - one short read
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number: no limit
            found.append(int(text))
    return min(found) if found else None


def default_param_bytes() -> int:
    """8 GiB of parameters, or less on a machine that could not compile that much: the
    compile peaks at about 4x the parameter bytes (the initialised arrays, their ONNX
    tensors, the serialised model), so the default is a fifth of the memory there is."""
    memory = machine_memory()
    cap = 8 * 2**30
    return cap if memory is None else max(min(cap, memory // COMPILE_PEAK_FACTOR), 2**20)


@dataclass(frozen=True)
class Limits:
    max_param_bytes: int = field(default_factory=default_param_bytes)  # 8 GiB, or 1/5 of the memory
    max_ops: int = 200_000  # ops after unrolling
    max_depth: int = 64  # nested block instantiations
    max_import_depth: int = 32
    max_rank: int = 8
    max_loop_iterations: int = 100_000  # compile-time `for` iterations in total, over the whole file
    max_tensor_elements: int = 2**40  # any single static tensor shape
    max_list_items: int = 1_000_000  # a compile-time list (or string), e.g. `[0] * n` or range(n)
    max_int_bits: int = 4096  # a compile-time integer, e.g. `k = k * k` in a loop
    max_source_bytes: int = 16 * 2**20  # one .net file: checked before it is read
    max_work_items: int = 50_000_000  # list items copied or compared at compile time, whole file (~1 s)


DEFAULT_LIMITS = Limits()
