"""Resource guards: checked before anything is allocated, so a typo like `dense(10**12)`
or a runaway `for` is a located error instead of an out-of-memory kill."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_param_bytes: int = 8 * 2**30  # 8 GiB of parameters
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
