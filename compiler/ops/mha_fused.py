"""`multihead_attention` through one fused attention node: ONNX `Attention` (opset 23) or
onnxruntime's contrib `com.microsoft.MultiHeadAttention`. The projections stay MatMuls
(both ops take projected Q, K, V); the node does scores, masking, softmax and the weighted
sum per head, in batch-first layout [N, L, E].

Masks: padding, lengths and 2-D bool attn_masks become one blocked-key mask; a float
attn_mask is added. A query whose keys are all blocked gets a zero context, as in the
decomposed form (the fused kernels would give NaN or a uniform average): its row is
replaced by zeros after the node. Neither form returns weights, nor takes a per-head
[N*H, L, S] attn_mask; the contrib op has no grouped-query heads (`kv_heads`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from netc.compiler.ir import DType, Op
from netc.compiler.ops.mha_lower import _Parts, blocked_keys, output_projection, project

if TYPE_CHECKING:
    from netc.compiler.lowering import LowerContext

MS_DOMAIN = "com.microsoft"


def fused_unsupported(attrs: dict, types: list, form: str, opset: int | None = None) -> str | None:
    """Why an op with `attrs` and input types `types` cannot take the fused form `form`
    (None when it can)."""
    if attrs["return_weights"]:
        return "return_weights=true (the fused nodes do not output the weights)"
    if form == "onnx" and opset is not None and opset < 23:
        return f"opset {opset} (ONNX Attention exists from opset 23: compile with --opset 23)"
    am = types[5]
    if am is not None and am.rank == 3:
        return "a per-head attn_mask [N*H, L, S]"
    if form == "contrib" and attrs["kv_heads"] != attrs["heads"]:
        return "grouped-query heads (kv_heads)"
    if form == "contrib" and types[0].dtype is not DType.f32:
        return f"{types[0].dtype.value} (onnxruntime's CPU kernel is float32-only)"
    return None


def lower_fused(ctx: LowerContext, op: Op, inputs: list[str], form: str) -> list[str]:
    s = _Parts(op, inputs)
    dtype = s.dtype.numpy
    causal = op.attrs["causal"]
    # Projections without the bias: the contrib op adds the packed bias itself.
    bias = s.p["in_proj_bias"]
    if form == "contrib":
        s.p["in_proj_bias"] = ""
    q, k, v = project(ctx, s)
    if not s.bf:  # the kernels are batch-first
        q, k, v = (ctx.node("Transpose", [x], perm=[1, 0, 2])[0] for x in (q, k, v))
    blocked = blocked_keys(ctx, s, False)  # causality is the node's own attribute
    blocked4 = ctx.node("Unsqueeze", [blocked, ctx.ints([1])])[0] if blocked else None  # [N|1, 1, L|1, S]
    additive = s.am if (s.am and s.am_type.dtype is not DType.bool) else None
    H, G = s.H, s.G

    def full(mask: str) -> str:
        """Both kernels want a mask whose last two dims are exactly [L, S] (no broadcast)."""
        shape = ctx.node("Concat", [ctx.ints([1, 1]), ctx.node("Shape", [q], start=1, end=2)[0],
                                    ctx.node("Shape", [k], start=1, end=2)[0]], axis=0)[0]
        return ctx.node("Expand", [mask, shape])[0]

    if form == "onnx":
        if additive:
            mask = additive
            if blocked4:
                neg = ctx.const(np.asarray(-np.inf, dtype), "neg_inf")
                mask = ctx.node("Where", [blocked4, neg, additive])[0]
        else:
            mask = ctx.node("Not", [blocked4])[0] if blocked4 else ""
        if mask:
            mask = full(mask)
        y = ctx.node("Attention", [q, k, v] + ([mask] if mask else []), q_num_heads=H, kv_num_heads=G,
                     is_causal=1 if causal else 0)[0]
    else:
        attn_bias = ""
        if blocked4 or additive:
            neg = ctx.const(np.asarray(-np.inf, dtype), "neg_inf")
            zero = ctx.const(np.asarray(0, dtype), "zero_f")
            attn_bias = ctx.node("Where", [blocked4, neg, additive or zero])[0] if blocked4 else additive
            attn_bias = full(attn_bias)
        ins = [q, k, v, bias or "", "", attn_bias]
        while ins and not ins[-1]:
            ins.pop()
        y = ctx.node("MultiHeadAttention", ins, domain=MS_DOMAIN, num_heads=H,
                     unidirectional=1 if causal else None)[0]
    if blocked is not None:  # queries with no key left: zero context (not NaN)
        some = ctx.node("ReduceMin", [ctx.node("Cast", [blocked], to=6)[0], ctx.ints([-1])], keepdims=1)[0]
        none_left = ctx.node("Cast", [some], to=9)[0]  # [N|1, L|1, 1]: every key blocked
        zero = ctx.const(np.asarray(0, dtype), "zero_f")
        y = ctx.node("Where", [none_left, zero, y])[0]
    if not s.bf:
        y = ctx.node("Transpose", [y], perm=[1, 0, 2])[0]
    return [output_projection(ctx, s, y), _no_weights(ctx, op)]


def _no_weights(ctx: LowerContext, op: Op) -> str:
    """The weights output: never read (the build refuses return_weights with a fused form,
    so nothing can refer to it), hence no ONNX value at all."""
    return ""
