"""`cache_write(cache, x, pos)`: a key/value cache for step-by-step decoding.

cache [M, N, ...] holds up to M steps of each example (time-major); x [N, ...] is one step;
pos (i32 or i64 [N]) the step index per example. The result is the cache with row pos[n]
of example n replaced by x[n]; a position outside [0, M) changes nothing. Inside a
`generate` step the cache is part of the state (a fixed-size buffer, so the state keeps
its type) and `attention(q, cache_k, cache_v, lengths=pos + 1)` reads the filled rows:
each step projects only the new token, instead of recomputing the whole prefix.
"""

from __future__ import annotations

from netc.compiler import dims as D
from netc.compiler.ir import DType
from netc.compiler.ops import attn_lower as L
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import numel, same_dim


@register
class CacheWrite(OpDef):
    name = "cache_write"
    doc = "cache [M, N, ...] with row pos[n] of example n replaced by x [N, ...] (a decoding step's key/value cache)"
    signature = (Arg("cache", "tensor"), Arg("x", "tensor"), Arg("pos", "tensor"))
    cases = (
        Case("cache_write(c, x, p)", {"c": "{f}[5, N, 3]", "x": "{f}[N, 3]", "p": "i32[N]"}, int_high=7,
             note="positions 5 and 6 are outside: no change"),
        Case("cache_write(c, x, p)", {"c": "i64[4, N]", "x": "i64[N]", "p": "i64[N]"}, int_high=4,
             note="a token history"),
    )

    def infer(self, attrs, inputs, b):
        cache, x, pos = inputs
        if cache.rank < 2:
            raise b.error(f"cache_write: the cache must be [M, N, ...] (steps first); got {cache}")
        if x.dtype != cache.dtype or x.rank != cache.rank - 1 or \
                not all(same_dim(a, c) for a, c in zip(x.shape, cache.shape[1:])):
            raise b.error(f"cache_write: a step of cache {cache} is {cache.dtype.value}"
                          f"{D.shape_str(cache.shape[1:])}; got {x}")
        if pos.dtype not in (DType.i32, DType.i64) or pos.rank != 1 or not same_dim(pos.shape[0], cache.shape[1]):
            raise b.error(f"cache_write: pos must be i32 or i64 [{cache.shape[1]}] (one step index per example); "
                          f"got {pos}")
        return [cache]

    def flops(self, op):
        return numel(op.inputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        cache, x, pos = inputs
        rank = op.inputs[0].type.rank
        steps = L.positions(ctx, cache, 0)  # [M]
        where = ctx.node("Cast", [pos], to=7)[0]
        hit = ctx.node("Equal", [ctx.node("Unsqueeze", [steps, ctx.ints([1])])[0], where])[0]  # [M, N]
        if rank > 2:
            hit = ctx.node("Unsqueeze", [hit, ctx.ints(list(range(2, rank)))])[0]
        return ctx.node("Where", [hit, x, cache])
