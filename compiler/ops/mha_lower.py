"""ONNX lowerings of `multihead_attention` (compiler/ops/mha.py has the semantics).

decomposed  MatMul/Softmax in [N, H, L, hd] layout; onnxruntime folds the weight
            transposes at load time and fuses the scaled score product (FusedMatMul).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from netc.compiler.ir import DType, Op
from netc.compiler.ops import attn_lower as L
from netc.compiler.ops.mha import PARAMS

if TYPE_CHECKING:
    from netc.compiler.lowering import LowerContext


class _Parts:
    """The op's ONNX inputs by role, and its static sizes."""

    def __init__(self, op: Op, inputs: list[str]):
        a = op.attrs
        self.q, self.k, self.v, self.kpm, self.lengths, self.am = inputs[:6]
        self.p = dict(zip(PARAMS, inputs[6:]))
        qt = op.inputs[0].type
        self.dtype = qt.dtype
        self.E = qt.shape[2]
        self.H, self.G = a["heads"], a["kv_heads"]
        self.hd = self.E // self.H
        self.bf = a["batch_first"]
        self.self_attention = op.inputs[1] is op.inputs[0] and op.inputs[2] is op.inputs[0]
        self.shared_kv = op.inputs[2] is op.inputs[1]
        self.am_type = op.inputs[5].type if op.inputs[5] is not None else None


def lower_mha(ctx: LowerContext, op: Op, inputs: list[str]) -> list[str]:
    from netc.compiler.ops.mha_choice import choose_mha_lowering

    form = choose_mha_lowering(op, ctx.opset)
    if form == "decomposed":
        return lower_decomposed(ctx, op, inputs)
    from netc.compiler.ops.mha_fused import lower_fused

    return lower_fused(ctx, op, inputs, form)


def project(ctx: LowerContext, s: _Parts) -> tuple[str, str, str]:
    """Q, K, V = x W^T + b, in the input layout, [.., .., E] / [.., .., G*hd]."""
    E, kvw = s.E, s.G * s.hd
    bias = s.p["in_proj_bias"]

    def rows(name: str, lo: int, hi: int) -> str:
        return ctx.node("Slice", [name, ctx.ints([lo]), ctx.ints([hi]), ctx.ints([0])])[0]

    def linear(x: str, weight: str, lo: int, hi: int) -> str:
        y = L.transposed_const_matmul(ctx, x, weight)
        return ctx.node("Add", [y, rows(bias, lo, hi)])[0] if bias else y

    packed = s.p["in_proj_weight"]
    if packed and s.self_attention:  # one MatMul for Q, K and V: the self-attention fast path
        qkv = linear(s.q, packed, 0, 3 * E)
        return tuple(ctx.node("Split", [qkv, ctx.ints([E, E, E])], n_out=3, axis=2))  # type: ignore[return-value]
    if packed:
        q = linear(s.q, rows(packed, 0, E), 0, E)
        if s.shared_kv:
            kv = linear(s.k, rows(packed, E, 3 * E), E, 3 * E)
            k, v = ctx.node("Split", [kv, ctx.ints([E, E])], n_out=2, axis=2)
        else:
            k = linear(s.k, rows(packed, E, 2 * E), E, 2 * E)
            v = linear(s.v, rows(packed, 2 * E, 3 * E), 2 * E, 3 * E)
        return q, k, v
    q = linear(s.q, s.p["q_proj_weight"], 0, E)
    k = linear(s.k, s.p["k_proj_weight"], E, E + kvw)
    v = linear(s.v, s.p["v_proj_weight"], E + kvw, E + 2 * kvw)
    return q, k, v


def output_projection(ctx: LowerContext, s: _Parts, y: str) -> str:
    out = L.transposed_const_matmul(ctx, y, s.p["out_proj.weight"])
    return ctx.node("Add", [out, s.p["out_proj.bias"]])[0] if s.p["out_proj.bias"] else out


def blocked_keys(ctx: LowerContext, s: _Parts, causal: bool) -> str | None:
    """A bool mask of rank 3, [N|1, L|1, S], true where a key is excluded: from the padding
    mask, lengths, causality and a 2-D bool attn_mask."""
    seq_axis = 1 if s.bf else 0
    blocked = None
    kpos = L.positions(ctx, s.k, seq_axis) if (s.lengths or causal) else None
    if s.kpm:
        blocked = ctx.node("Unsqueeze", [s.kpm, ctx.ints([1])])[0]
    if s.lengths:
        real = L.lengths_valid(ctx, s.lengths, kpos, 3)  # [N, 1, S]
        blocked = L.either(ctx, blocked, ctx.node("Not", [real])[0])
    if causal:
        qpos = ctx.node("Unsqueeze", [L.positions(ctx, s.q, seq_axis), ctx.ints([1])])[0]
        future = ctx.node("Unsqueeze", [ctx.node("Greater", [kpos, qpos])[0], ctx.ints([0])])[0]
        blocked = L.either(ctx, blocked, future)
    if s.am and s.am_type.dtype is DType.bool and s.am_type.rank == 2:
        blocked = L.either(ctx, blocked, ctx.node("Unsqueeze", [s.am, ctx.ints([0])])[0])
    return blocked


def lower_decomposed(ctx: LowerContext, op: Op, inputs: list[str]) -> list[str]:
    s = _Parts(op, inputs)
    dtype = s.dtype.numpy
    q, k, v = project(ctx, s)
    H, G, hd = s.H, s.G, s.hd
    to_heads = [0, 2, 1, 3] if s.bf else [1, 2, 0, 3]  # -> [N, heads, len, hd]

    def heads(x: str, n: int) -> str:
        x = ctx.node("Reshape", [x, ctx.ints([0, 0, n, hd])])[0]
        return ctx.node("Transpose", [x], perm=to_heads)[0]

    scale = ctx.const(np.asarray(1.0 / math.sqrt(hd), dtype), "scale")
    # The scale multiplies the MatMul's input directly: onnxruntime folds it into FusedMatMul.
    Q = ctx.node("Mul", [heads(q, H), scale])[0]
    KT = ctx.node("Transpose", [ctx.node("Reshape", [k, ctx.ints([0, 0, G, hd])])[0]],
                  perm=[0, 2, 3, 1] if s.bf else [1, 2, 3, 0])[0]  # [N, G, hd, S]
    V = heads(v, G)
    grouped = G != H
    if grouped:  # [N, G, H/G, L, hd] against [N, G, 1, hd, S]: each key head serves H/G query heads
        Q = ctx.node("Reshape", [Q, ctx.ints([0, G, H // G, -1, hd])])[0]
        KT = ctx.node("Unsqueeze", [KT, ctx.ints([2])])[0]
        V = ctx.node("Unsqueeze", [V, ctx.ints([2])])[0]
    scores = ctx.node("MatMul", [Q, KT])[0]
    blocked = blocked_keys(ctx, s, op.attrs["causal"])
    if blocked is not None:  # head axes
        blocked = ctx.node("Unsqueeze", [blocked, ctx.ints([1, 2] if grouped else [1])])[0]
    if s.am and s.am_type.rank == 3:  # [N*H, L, S] -> the scores' own shape
        shaped = ctx.node("Reshape", [s.am, ctx.node("Shape", [scores])[0]])[0]
        if s.am_type.dtype is DType.bool:
            blocked = L.either(ctx, blocked, shaped)
        else:
            scores = ctx.node("Add", [scores, shaped])[0]
    elif s.am and s.am_type.dtype is not DType.bool:
        scores = ctx.node("Add", [scores, s.am])[0]
    valid = ctx.node("Not", [blocked])[0] if blocked is not None else None
    weights = L.masked_softmax(ctx, scores, valid, dtype)
    y = ctx.node("MatMul", [weights, V])[0]
    if grouped:
        y = ctx.node("Reshape", [y, ctx.ints([0, H, -1, hd])])[0]
        last2 = ctx.node("Shape", [weights], start=-2)[0]
        weights = ctx.node("Reshape", [weights, ctx.node("Concat", [ctx.ints([0, H]), last2], axis=0)[0]])[0]
    y = ctx.node("Transpose", [y], perm=[0, 2, 1, 3] if s.bf else [2, 0, 1, 3])[0]
    y = ctx.node("Reshape", [y, ctx.ints([0, 0, s.E])])[0]
    out = output_projection(ctx, s, y)
    if not op.attrs["return_weights"]:
        return [out, ""]  # nothing can read them: no nodes for the average
    if op.attrs["average_weights"]:
        weights = ctx.node("ReduceMean", [weights, ctx.ints([1])], keepdims=0)[0]
    return [out, weights]
