"""Transformer pieces that are ops rather than blocks: RMS normalisation and positional
encodings (sinusoidal, computed for any sequence length; learned, a table sliced to it).

    rms_norm(x)              y = x / sqrt(mean(x^2 over the last axis) + eps) * scale
    positional_encoding(x)   y = x + P[:T], T the sequence axis (0, or 1 with batch_first)
      sinusoidal: P[t, 2i] = sin(t / 10000^(2i/D)), P[t, 2i+1] = cos(t / 10000^(2i/D))
      learned:    P = the parameter `weight` [max_len, D]

The sinusoidal table is not stored: T may be symbolic, so the lowering computes it at run
time from `Range(T)` and the D/2 frequencies (a compile-time constant) — T x D sines and
cosines, negligible beside one attention layer, and no max-length limit.
"""

from __future__ import annotations

import math

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init
from netc.compiler.ops import attn_lower as L
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import numel


def _float(b, what: str, x) -> None:
    if not x.type.dtype.is_float:
        raise b.type_error(f"{what} needs a floating-point tensor; got {x.type}",
                           "embed integer ids first: ids -> embed(vocab, dim)")


@register
class RmsNorm(OpDef):
    name = "rms_norm"
    doc = "x / sqrt(mean(x^2) + eps) * scale over the last axis (Zhang & Sennrich 2019; nn.RMSNorm)"
    has_params = True
    step_polymorphic = True
    signature = (
        Arg("x", "tensor"),
        Arg("eps", "float", 1e-6),
        Arg("scale_init", "init", Init("ones")),
    )
    cases = (
        Case("rms_norm(x)", {"x": "{f}[3, 8]"}),
        Case("x -> rms_norm(eps=0.001, scale_init=normal(std=1))", {"x": "{f}[T, N, 6]"}, note="rank 3"),
    )

    def build(self, b, x, eps, scale_init):
        if x.type.rank < 1:
            raise b.error(f"rms_norm needs a tensor of rank >= 1; got {x.type}")
        _float(b, "rms_norm", x)
        if eps <= 0:
            raise b.error(f"rms_norm: eps must be positive; got {eps:g}")
        width = b.static(x.type.shape[-1], "rms_norm: the normalised width (last axis)")
        scale = b.param("scale", (width,), x.type.dtype, scale_init)
        return b.emit(self.name, [x, scale], {"eps": eps})[0]

    def infer(self, attrs, inputs, b):
        x, scale = inputs
        if scale.shape != (x.shape[-1],) or scale.dtype != x.dtype:
            raise b.error(f"rms_norm: scale {scale} does not match the last axis of {x}")
        return [x]

    def flops(self, op):
        return D.mul(4, numel(op.inputs[0].type.shape))

    def lower(self, ctx, op, inputs):
        x, scale = inputs
        dtype = op.inputs[0].type.dtype.numpy
        if ctx.opset >= 23:
            return ctx.node("RMSNormalization", [x, scale], axis=-1, epsilon=op.attrs["eps"])
        # Below opset 23: mean of squares, add eps, reciprocal square root.
        ms = ctx.node("ReduceMean", [ctx.node("Mul", [x, x])[0], ctx.ints([-1])], keepdims=1)[0]
        eps = ctx.const(np.asarray(op.attrs["eps"], dtype), "eps")
        inv = ctx.node("Reciprocal", [ctx.node("Sqrt", [ctx.node("Add", [ms, eps])[0]])[0]])[0]
        return ctx.node("Mul", [ctx.node("Mul", [x, inv])[0], scale])


@register
class PositionalEncoding(OpDef):
    name = "positional_encoding"
    doc = ("x + P[:T] with sinusoidal positions (Vaswani et al. 2017; computed for any T) or a learned "
           "table `weight` [max_len, D]; x is [T, N, D] (or [N, T, D] with batch_first)")
    has_params = True
    signature = (
        Arg("x", "tensor"),
        Arg("kind", "choice", "sinusoidal", choices=("sinusoidal", "learned")),
        Arg("max_len", "int", 512, positive=True, doc="learned: rows of the table (the longest sequence)"),
        Arg("batch_first", "bool", False),
        Arg("base", "float", 10000.0, doc="sinusoidal: the wavelength base"),
        Arg("weight_init", "init", Init("normal", (("std", 0.02),))),
    )
    cases = (
        Case("positional_encoding(x)", {"x": "{f}[T, N, 6]"}),
        Case("positional_encoding(x, batch_first=true)", {"x": "{f}[N, T, 5]"}, note="odd width"),
        Case('positional_encoding(x, kind="learned", max_len=9)', {"x": "{f}[T, N, 4]"}),
        Case('positional_encoding(x, kind="learned", max_len=4, batch_first=true)', {"x": "{f}[2, 4, 3]"}),
    )

    def build(self, b, x, kind, max_len, batch_first, base, weight_init):
        if x.type.rank != 3:
            layout = "[N, T, D]" if batch_first else "[T, N, D]"
            raise b.error(f"positional_encoding expects a sequence {layout}; got {x.type}")
        _float(b, "positional_encoding", x)
        width = b.static(x.type.shape[2], "positional_encoding: the width D")
        length = x.type.shape[1 if batch_first else 0]
        table = None
        if kind == "learned":
            if isinstance(length, int) and length > max_len:
                raise b.error(f"positional_encoding: the sequence has {length} steps, more than max_len={max_len}",
                              f"max_len={length} or more")
            table = b.param("weight", (max_len, width), x.type.dtype, weight_init, fan_in=max_len, fan_out=width)
        if base <= 1:
            raise b.error(f"positional_encoding: base must be greater than 1; got {base:g}")
        return b.emit(self.name, [x, table], {"kind": kind, "batch_first": batch_first, "base": base})[0]

    def infer(self, attrs, inputs, b):
        return [inputs[0]]

    def flops(self, op):
        return numel(op.inputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        x, table = inputs
        t = op.inputs[0].type
        axis = 1 if op.attrs["batch_first"] else 0
        if table:  # rows 0..T-1 of the table
            length = ctx.node("Shape", [x], start=axis, end=axis + 1)[0]
            pos = ctx.node("Slice", [table, ctx.ints([0]), length, ctx.ints([0])])[0]
        else:
            pos = sinusoid_lowering(ctx, x, axis, t.shape[2], t.dtype, op.attrs["base"])
        pos = ctx.node("Unsqueeze", [pos, ctx.ints([1 - axis])])[0]  # broadcast over the batch axis
        return ctx.node("Add", [x, pos])


def frequencies(width: int, base: float) -> np.ndarray:
    """1 / base^(2i/D) for i < ceil(D/2): the angle rates of the sine/cosine pairs."""
    return np.exp(-math.log(base) * np.arange(0, width, 2, dtype=np.float64) / width)


def sinusoid_lowering(ctx, x: str, axis: int, width: int, dtype: DType, base: float) -> str:
    """[T, D]: sin of the even columns, cos of the odd ones, from Range(T) at run time."""
    freq = frequencies(width, base).astype(dtype.numpy)
    pos = ctx.node("Cast", [L.positions(ctx, x, axis)], to=dtype.onnx)[0]
    angles = ctx.node("Mul", [ctx.node("Unsqueeze", [pos, ctx.ints([1])])[0], ctx.const(freq, "freq")])[0]
    pairs = [ctx.node("Unsqueeze", [ctx.node(f, [angles])[0], ctx.ints([2])])[0] for f in ("Sin", "Cos")]
    table = ctx.node("Concat", pairs, axis=2)[0]  # [T, D/2, 2]: sin, cos interleaved
    table = ctx.node("Reshape", [table, ctx.ints([0, -1])])[0]
    if width % 2:  # odd D: the last pair has no cosine column
        table = ctx.node("Slice", [table, ctx.ints([0]), ctx.ints([width]), ctx.ints([1])])[0]
    return table

