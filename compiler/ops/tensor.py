"""Ops the elaborator makes from syntax rather than calls: constants, filled tensors
(`zeros(N, 256)`) and indexing/slicing (`x[:, -1]`)."""

from __future__ import annotations

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import TensorType
from netc.compiler.ops.registry import Case, OpDef, register

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)


@register
class Constant(OpDef):
    name = "constant"
    internal = True
    doc = "a compile-time tensor (numbers in arithmetic become these)"
    cases = (Case("x * 2 + 1", {"x": "{f}[3]"}),)

    def infer(self, attrs, inputs, b):
        value = attrs["value"]
        return [TensorType(_dtype(value), tuple(int(d) for d in value.shape))]

    def lower(self, ctx, op, inputs):
        return [ctx.const(op.attrs["value"], "c")]


def _dtype(array: np.ndarray):
    from netc.compiler.ir import DType

    return DType.from_numpy(array.dtype)


@register
class Fill(OpDef):
    name = "fill"
    internal = True
    doc = "a tensor of one value with a (possibly symbolic) shape: zeros(N, 4), ones(...)"
    cases = (Case("x + zeros(N, 4, dtype={f})", {"x": "{f}[N, 4]"}),
             Case("x * ones(3, 1, dtype={f})", {"x": "{f}[3, 4]"}))

    def infer(self, attrs, inputs, b):
        return [TensorType(attrs["dtype"], tuple(attrs["shape"]))]

    def lower(self, ctx, op, inputs):
        dtype = op.attrs["dtype"]
        shape = op.attrs["shape"]
        if all(isinstance(d, int) for d in shape):
            return [ctx.const(np.full(shape, op.attrs["value"], dtype=dtype.numpy), "fill")]
        from onnx import numpy_helper

        value = numpy_helper.from_array(np.array([op.attrs["value"]], dtype=dtype.numpy))
        return ctx.node("ConstantOfShape", [ctx.shape_tensor(shape)], value=value)


def slice_length(dim: D.Dim, start: int | None, stop: int | None, step: int | None) -> D.Dim | None:
    """Length of `dim[start:stop:step]`, or None when it cannot be known at compile time."""
    step = 1 if step is None else step
    if isinstance(dim, int):
        return len(range(*slice(start, stop, step).indices(dim)))
    if step != 1:
        return None
    lo = 0 if start is None else start
    if stop is None:
        return D.sub(dim, lo) if lo >= 0 else -lo
    if stop < 0 and lo >= 0:
        return D.sub(D.add(dim, stop), lo)
    if stop >= 0 and lo >= 0 and stop >= lo:
        return None  # stop may exceed dim; netc does not guess
    return None


@register
class Index(OpDef):
    name = "index"
    internal = True
    doc = "x[i, a:b:s, ...]: integer indices drop their axis; slices keep it"
    cases = (
        Case("x[:, -1]", {"x": "{f}[T, 4, 3]"}),
        Case("x[1:3, ::2]", {"x": "{f}[4, 6]"}),
        Case("x[-1]", {"x": "{f}[T, N, 3]"}),
        Case("x[::-1, 2:]", {"x": "{f}[5, N]"}),
    )

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        items = attrs["items"]
        if len(items) > x.rank:
            raise b.error(f"too many indices ({len(items)}) for {x} of rank {x.rank}")
        shape: list[D.Dim] = []
        for axis, item in enumerate(items):
            dim = x.shape[axis]
            if isinstance(item, int):
                # A dim is below 2**63 (ONNX shapes are int64), so a larger index never fits.
                if (isinstance(dim, int) and not -dim <= item < dim) or not _INT64_MIN <= item <= _INT64_MAX:
                    raise b.error(f"index {_int_text(item)} is out of range for axis {axis} of {x}")
                continue
            start, stop, step = item
            if step == 0:
                raise b.error("slice step must not be zero")
            if step is not None and not -_INT64_MAX <= step <= _INT64_MAX:
                raise b.error(f"slice step {_int_text(step)} is beyond the int64 range")
            length = slice_length(dim, start, stop, step)
            if length is None:
                raise b.error(f"cannot tell the length of [{_fmt(item)}] on the symbolic dim {dim}",
                              "slice from the end (x[-k:]) or give the dim a value with --set")
            shape.append(length)
        shape += x.shape[len(items):]
        return [TensorType(x.dtype, tuple(shape))]

    def lower(self, ctx, op, inputs):
        starts, ends, axes, steps, squeeze = [], [], [], [], []
        for axis, item in enumerate(op.attrs["items"]):
            if isinstance(item, int):
                start, stop, step = item, (item + 1 if item != -1 else _INT64_MAX), 1
                squeeze.append(axis)
            else:
                start, stop, step = item
                step = 1 if step is None else step
                if start is None:
                    start = 0 if step > 0 else _INT64_MAX
                if stop is None:
                    stop = _INT64_MAX if step > 0 else _INT64_MIN
                if (start, stop, step) == (0, _INT64_MAX, 1):
                    continue
            # ONNX Slice clamps its bounds to the dim, as Python does: clamping bounds beyond
            # int64 to the int64 range keeps the meaning and makes them representable.
            starts.append(_clamp64(start))
            ends.append(_clamp64(stop))
            axes.append(axis)
            steps.append(step)
        y = inputs[0]
        if axes:
            y = ctx.node("Slice", [y, ctx.ints(starts), ctx.ints(ends), ctx.ints(axes), ctx.ints(steps)])[0]
        if squeeze:
            y = ctx.node("Squeeze", [y, ctx.ints(squeeze)])[0]
        if y == inputs[0]:
            y = ctx.node("Identity", [y])[0]
        return [y]


def _fmt(item: tuple) -> str:
    return ":".join("" if v is None else _int_text(v) for v in item)


def _clamp64(v: int) -> int:
    return min(max(v, _INT64_MIN), _INT64_MAX)


def _int_text(v: int) -> str:
    return str(v) if v.bit_length() <= 128 else f"of {v.bit_length()} bits"
