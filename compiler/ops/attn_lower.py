"""ONNX building blocks shared by the attention lowerings: run-time positions, masks and the
masked softmax. Every helper takes ONNX value names and returns ONNX value names."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from netc.compiler.lowering import LowerContext


def axis_size(ctx: LowerContext, x: str, axis: int) -> str:
    """The size of `axis` of ONNX value `x` as an int64 scalar (read at run time)."""
    part = ctx.node("Shape", [x], start=axis, end=axis + 1)[0]
    return ctx.node("Squeeze", [part, ctx.ints([0])])[0]


def positions(ctx: LowerContext, x: str, axis: int) -> str:
    """int64 [L]: 0, 1, ..., L - 1 with L the size of `axis` of `x`."""
    zero = ctx.const(np.asarray(0, np.int64), "zero")
    one = ctx.const(np.asarray(1, np.int64), "one")
    return ctx.node("Range", [zero, axis_size(ctx, x, axis), one])[0]


def lengths_valid(ctx: LowerContext, lengths: str, pos: str, rank: int) -> str:
    """bool [N, 1, ..., 1, T]: key t of example n is real (t < lengths[n]); `rank` axes."""
    lens = ctx.node("Cast", [lengths], to=7)[0]  # int64, the type of the positions
    lens = ctx.node("Unsqueeze", [lens, ctx.ints(list(range(1, rank)))])[0]
    return ctx.node("Less", [pos, lens])[0]


def both(ctx: LowerContext, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return ctx.node("And", [a, b])[0]


def either(ctx: LowerContext, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return ctx.node("Or", [a, b])[0]


def masked_softmax(ctx: LowerContext, scores: str, valid: str | None, dtype: np.dtype) -> str:
    """Softmax over the last axis, taking only the keys where `valid`; a query with no valid
    key gets zero weights (not NaN): masked scores become the dtype's lowest finite number
    (never -inf, so the row maximum stays finite) and masked weights are set to zero."""
    if valid is None:
        return ctx.node("Softmax", [scores], axis=-1)[0]
    lowest = ctx.const(np.asarray(np.finfo(dtype).min, dtype), "lowest")
    zero = ctx.const(np.asarray(0, dtype), "zero_f")
    masked = ctx.node("Where", [valid, scores, lowest])[0]
    weights = ctx.node("Softmax", [masked], axis=-1)[0]
    return ctx.node("Where", [valid, weights, zero])[0]


def hard_weights(ctx: LowerContext, scores: str, valid: str | None, pos: str, dtype: np.dtype) -> str:
    """One-hot weights at the arg-max of the (masked) scores; the first on ties."""
    if valid is not None:
        lowest = ctx.const(np.asarray(np.finfo(dtype).min, dtype), "lowest")
        scores = ctx.node("Where", [valid, scores, lowest])[0]
    best = ctx.node("ArgMax", [scores], axis=-1, keepdims=1)[0]
    onehot = ctx.node("Equal", [pos, best])[0]
    if valid is not None:
        onehot = ctx.node("And", [onehot, valid])[0]
    return ctx.node("Cast", [onehot], to=_onnx_float(dtype))[0]


def _onnx_float(dtype: np.dtype) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def transposed_const_matmul(ctx: LowerContext, x: str, weight: str) -> str:
    """x @ weight^T for a weight stored [out, in] (PyTorch's layout); onnxruntime folds the
    Transpose of an initializer at load time."""
    wt = ctx.node("Transpose", [weight], perm=[1, 0])[0]
    return ctx.node("MatMul", [x, wt])[0]
