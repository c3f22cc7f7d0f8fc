"""Indexing by computed positions: `gather` (rows by index, also `x[:, idx]`),
`take_along` (per-element positions), `scatter` (write at positions), `topk`, and the ops
whose result length is decided at run time, `compress` and `nonzero`.

Index semantics, shared by all: indices are i64 or i32; a negative index counts from the end
of its axis (-1 is the last); an index outside [-n, n) is an error — at compile time when the
indices are constants, otherwise onnxruntime reports it when the model runs.
"""

from __future__ import annotations

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, TensorType, Value
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.ops.shape import _flat_args
from netc.compiler.shapes import numel, replace_dim, same_dim, tensor_axis

_INDEX_DTYPES = (DType.i32, DType.i64)


def check_indices(b, name: str, idx: TensorType, what: str = "indices") -> None:
    if idx.dtype not in _INDEX_DTYPES:
        raise b.type_error(f"{name}: {what} must be integers (i64 or i32); got {idx}",
                           "convert with cast(idx, i64)" if idx.dtype.is_float else "argmax/topk give i64 indices")


def check_constant_range(b, name: str, idx, size: D.Dim, axis: int) -> None:
    """Indices known at compile time (a constant) must lie in [-size, size)."""
    producer = idx.producer
    if producer is None or producer.kind != "constant" or not isinstance(size, int):
        return
    values = producer.attrs["value"]
    bad = values[(values < -size) | (values >= size)]
    if bad.size:
        raise b.error(f"{name}: index {int(bad.flat[0])} is out of range for axis {axis} of size {size}",
                      f"indices lie in [{-size}, {size})")


def _indexed_axis(b, name: str, x: Value, idx: Value, axis: int) -> int:
    """The axis of x that idx indexes (gather, take_along), checked: integer indices, and
    constant ones in range."""
    axis = tensor_axis(b, name, x, axis)
    check_indices(b, name, idx.type)
    check_constant_range(b, name, idx, x.type.shape[axis], axis)
    return axis


@register
class Gather(OpDef):
    name = "gather"
    doc = ("gather(x, idx, axis=0): the slices of x at positions idx along axis; idx's dims replace the "
           "axis (x[idx], x[:, idx] mean the same). ONNX Gather")
    signature = (Arg("x", "tensor"), Arg("idx", "tensor"), Arg("axis", "int", 0))
    cases = (
        Case("gather(x, i, axis=1)", {"x": "{f}[3, 5]", "i": "i64[N, 2]"}, int_high=5),
        Case("x[i]", {"x": "{f}[4, 3]", "i": "i64[6]"}, int_high=4, note="rows"),
        Case("x[:, i]", {"x": "{f}[N, 5, 2]", "i": "i32[3]"}, int_high=5, note="i32 indices"),
        Case("x[1:, -1, i]", {"x": "{f}[3, N, 4]", "i": "i64[2, 2]"}, int_high=4, note="with slices"),
        Case("gather(x, i - 3)", {"x": "{f}[3, 4]", "i": "i64[5]"}, int_high=3, note="negative indices"),
        Case("x[argmax(y, axis=0)]", {"x": "{f}[4, 3]", "y": "{f}[4]"}, note="scalar index drops the axis"),
        Case("gather(x, tensor([2, 0, -1]), axis=-1)", {"x": "i64[N, 3]"}, note="constant indices"),
    )

    def build(self, b, x, idx, axis):
        axis = _indexed_axis(b, self.name, x, idx, axis)
        return b.emit(self.name, [x, idx], {"axis": axis})[0]

    def infer(self, attrs, inputs, b):
        x, idx = inputs
        check_indices(b, "gather", idx)
        axis = attrs["axis"]
        return [TensorType(x.dtype, (*x.shape[:axis], *idx.shape, *x.shape[axis + 1:]))]

    def lower(self, ctx, op, inputs):
        return ctx.node("Gather", inputs, axis=op.attrs["axis"])


def _along_shapes(b, name: str, x: TensorType, idx: TensorType, axis: int, what: str = "indices") -> None:
    """idx has x's rank; off the axis each dim is x's or, both known, no larger."""
    if idx.rank != x.rank:
        raise b.error(f"{name}: {what} must have the rank of x ({x.rank}); got {idx}")
    for a, (d, n) in enumerate(zip(idx.shape, x.shape)):
        if a == axis or same_dim(d, n) or (isinstance(d, int) and isinstance(n, int) and d <= n):
            continue
        raise b.error(f"{name}: axis {a} of the {what} ({d}) does not fit x's ({n}): off the gathered axis "
                      f"they must be equal", f"x is {x}, the {what} {idx}")


@register
class TakeAlong(OpDef):
    name = "take_along"
    doc = ("take_along(x, idx, axis): out[.., i, ..] = x[.., idx[.., i, ..], ..] on axis, elementwise "
           "positions (ONNX GatherElements, torch.gather); the result has idx's shape")
    signature = (Arg("x", "tensor"), Arg("idx", "tensor"), Arg("axis", "int", -1))
    cases = (
        Case("take_along(x, i, axis=1)", {"x": "{f}[N, 5]", "i": "i64[N, 3]"}, int_high=5),
        Case("take_along(x, i, axis=0)", {"x": "{f}[4, 3, 2]", "i": "i32[6, 3, 2]"}, int_high=4),
        Case("take_along(x, i - 2, -1)", {"x": "{f}[3, 2]", "i": "i64[3, 4]"}, int_high=4,
             note="negative indices"),
        Case("take_along(x, argmax(x, axis=1, keepdims=true), axis=1)", {"x": "{f}[N, 6]"},
             note="the maximum along an axis"),
    )

    def build(self, b, x, idx, axis):
        axis = _indexed_axis(b, self.name, x, idx, axis)
        return b.emit(self.name, [x, idx], {"axis": axis})[0]

    def infer(self, attrs, inputs, b):
        x, idx = inputs
        check_indices(b, "take_along", idx)
        _along_shapes(b, "take_along", x, idx, attrs["axis"])
        return [TensorType(x.dtype, idx.shape)]

    def lower(self, ctx, op, inputs):
        return ctx.node("GatherElements", inputs, axis=op.attrs["axis"])


_SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")


@register
class Scatter(OpDef):
    name = "scatter"
    doc = ("scatter(x, idx, updates, axis=0, reduction=none): a copy of x with "
           "out[.., idx[.., i, ..], ..] = updates[.., i, ..] on axis (ONNX ScatterElements); "
           "reduction add/mul/max/min combines instead of replacing. With reduction=none, "
           "indices that repeat along the axis leave it undefined which update lands")
    signature = (Arg("x", "tensor"), Arg("idx", "tensor"), Arg("updates", "tensor"), Arg("axis", "int", 0),
                 Arg("reduction", "choice", "none", choices=_SCATTER_REDUCTIONS))
    cases = (
        Case("scatter(x, topk(y, 4, axis=1)[1], u, axis=1)",
             {"x": "{f}[N, 4]", "y": "{f}[N, 4]", "u": "{f}[N, 4]"}, note="a permutation: no repeats"),
        Case("scatter(x, i, u, axis=0, reduction=add)", {"x": "{f}[3, 4]", "i": "i64[5, 4]", "u": "{f}[5, 4]"},
             int_high=3, note="repeats add up"),
        Case("scatter(x, i, u, axis=1, reduction=max)", {"x": "{f}[N, 3]", "i": "i64[N, 6]", "u": "{f}[N, 6]"},
             int_high=3),
        Case("scatter(x, i - 3, u, axis=1, reduction=min)", {"x": "i64[2, 3]", "i": "i64[2, 4]", "u": "i64[2, 4]"},
             int_high=3, note="negative indices"),
        Case("scatter(x, i, u, reduction=mul)", {"x": "{f}[2, 2]", "i": "i64[3, 2]", "u": "{f}[3, 2]"},
             int_high=2),
    )

    def build(self, b, x, idx, updates, axis, reduction):
        axis = b.axis(axis, max(x.type.rank, 1), "scatter: axis")
        check_indices(b, "scatter", idx.type)
        check_constant_range(b, "scatter", idx, x.type.shape[axis], axis)
        return b.emit(self.name, [x, idx, updates], {"axis": axis, "reduction": reduction})[0]

    def infer(self, attrs, inputs, b):
        x, idx, updates = inputs
        check_indices(b, "scatter", idx)
        if updates.dtype != x.dtype:
            raise b.type_error(f"scatter: the updates' dtype differs from x's: {updates} and {x}")
        if updates.shape != idx.shape:
            raise b.error(f"scatter: the updates {updates} and the indices {idx} must have one shape")
        _along_shapes(b, "scatter", x, idx, attrs["axis"])
        return [x]

    def flops(self, op):
        return 0 if op.attrs["reduction"] == "none" else numel(op.inputs[1].type.shape)

    def lower(self, ctx, op, inputs):
        return ctx.node("ScatterElements", inputs, axis=op.attrs["axis"], reduction=op.attrs["reduction"])


@register
class TopK(OpDef):
    name = "topk"
    doc = ("topk(x, k, axis=-1, largest=true): (values, indices) of the k largest (smallest) elements along "
           "axis, in order; equal values keep their order (lower index first). ONNX TopK")
    signature = (Arg("x", "tensor"), Arg("k", "dim", positive=True), Arg("axis", "int", -1),
                 Arg("largest", "bool", True))
    cases = (
        Case("topk(x, 2)[0]", {"x": "{f}[3, 5]"}),
        Case("topk(x, 3, axis=0)[1]", {"x": "{f}[4, N]"}),
        Case("v, i = topk(x, 2, largest=false)\n  output a = v\n  output b = i", {"x": "{f}[N, 6]"},
             note="smallest, destructured"),
        Case("topk(x, 4)[1]", {"x": "i64[N, 6]"}, int_high=3, note="ties: lower index first"),
        Case("topk(x, 3, axis=1, largest=false)[1]", {"x": "i32[2, 5, 2]"}, int_high=2, note="ties"),
        Case("topk(x, dim(x, 1))[1]", {"x": "{f}[2, T]"}, note="symbolic k: a full sort"),
    )

    def build(self, b, x, k, axis, largest):
        axis = tensor_axis(b, "topk", x, axis)
        n = x.type.shape[axis]
        if isinstance(k, int) and isinstance(n, int) and k > n:
            raise b.error(f"topk: k = {k} is larger than axis {axis} of {x.type}")
        if not isinstance(k, int) and not same_dim(k, n) and D.symbols(k) - D.symbols(n):
            raise b.error(f"topk: k = {k} is not known to fit axis {axis} of {x.type}")
        values, indices = b.emit(self.name, [x], {"k": k, "axis": axis, "largest": largest})
        return values, indices

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        if x.dtype not in (DType.f32, DType.f64, DType.i32, DType.i64):
            raise b.type_error(f"topk needs an f32, f64, i32 or i64 tensor; got {x}", "convert with cast(x, f32)")
        shape = replace_dim(x.shape, attrs["axis"], attrs["k"])
        return [TensorType(x.dtype, shape), TensorType(DType.i64, shape)]

    def flops(self, op):
        return numel(op.inputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        k = ctx.dim_tensor(op.attrs["k"])
        return ctx.node("TopK", [inputs[0], k], n_out=2, axis=op.attrs["axis"], largest=int(op.attrs["largest"]),
                        sorted=1)


# ---------------------------------------------------------------------- run-time lengths


def _runtime_dim(b, what: str) -> str:
    """The name of a new symbolic dim whose value only the run knows, named after the op
    (`compress0.len`). Kept as a name: the reference learns its value from the result."""
    if b.parent is not None:
        raise b.error(f"{what} inside a recurrence step: its length would change from step to step",
                      "compact outside the step, on the whole sequence")
    return f"{b.label}.len"


@register
class Compress(OpDef):
    name = "compress"
    doc = ("compress(x, mask, axis=0): the slices of x along axis where the bool mask [n] is true, in "
           "order; the new length is a run-time dim named `<op>.len` (dim(y, axis)). ONNX Compress")
    signature = (Arg("x", "tensor"), Arg("mask", "tensor"), Arg("axis", "int", 0))
    cases = (
        Case("compress(x, m)", {"x": "{f}[T, 3]", "m": "bool[T]"}),
        Case("compress(x, x[0] > 0, axis=1)", {"x": "{f}[2, 6]"}),
        Case("compress(i, i != 1)", {"i": "i64[T]"}, int_high=3),
    )

    def build(self, b, x, mask, axis):
        axis = tensor_axis(b, "compress", x, axis)
        return b.emit(self.name, [x, mask], {"axis": axis, "length": _runtime_dim(b, "compress")})[0]

    def infer(self, attrs, inputs, b):
        x, mask = inputs
        axis = attrs["axis"]
        if mask.dtype is not DType.bool or mask.rank != 1:
            raise b.type_error(f"compress: the mask must be a 1-D bool tensor; got {mask}",
                               "make one by comparing: x != blank")
        if not same_dim(mask.shape[0], x.shape[axis]):
            raise b.error(f"compress: the mask {mask} must have the length of axis {axis} of {x}")
        return [TensorType(x.dtype, replace_dim(x.shape, axis, D.symbol(attrs["length"])))]

    def lower(self, ctx, op, inputs):
        out = ctx.node("Compress", inputs, axis=op.attrs["axis"])
        ctx.define_symbol(op.attrs["length"], out[0], op.attrs["axis"])
        return out


@register
class NonZero(OpDef):
    name = "nonzero"
    doc = ("nonzero(mask): the positions of the true elements of a bool tensor, i64[rank, count] in row-major "
           "order; count is a run-time dim named `<op>.len`. ONNX NonZero")
    signature = (Arg("mask", "tensor"),)
    cases = (
        Case("nonzero(m)", {"m": "bool[3, 4]"}),
        Case("nonzero(x > 0)", {"x": "{f}[T]"}),
    )

    def build(self, b, mask):
        return b.emit(self.name, [mask], {"length": _runtime_dim(b, "nonzero")})[0]

    def infer(self, attrs, inputs, b):
        (mask,) = inputs
        if mask.dtype is not DType.bool:
            raise b.type_error(f"nonzero needs a bool tensor; got {mask}", "compare to make one: x != 0")
        return [TensorType(DType.i64, (max(mask.rank, 1), D.symbol(attrs["length"])))]

    def lower(self, ctx, op, inputs):
        out = ctx.node("NonZero", inputs)
        ctx.define_symbol(op.attrs["length"], out[0], 1)
        return out


@register
class Compact(OpDef):
    name = "compact"
    doc = ("compact(x, mask, axis=0, pad=0): per line along axis, the elements of x where mask (x's shape) is "
           "true, moved to the front in order and padded with `pad` to the longest line; gives (values, "
           "lengths) with lengths i64 (x's shape without axis) and the new length a run-time dim `<op>.len`")
    signature = (Arg("x", "tensor"), Arg("mask", "tensor"), Arg("axis", "int", 0), Arg("pad", "float", 0.0))
    cases = (
        Case("v, n = compact(x, x > 0)\n  output a = v\n  output b = n", {"x": "{f}[T, N]"}),
        Case("compact(i, i != 0, axis=1, pad=-1)[0]", {"i": "i64[N, T]"}, int_high=3, note="padding value"),
        Case("compact(x, m, axis=1)[0]", {"x": "{f}[2, 5, 3]", "m": "bool[2, 5, 3]"}, note="middle axis"),
    )

    def build(self, b, x, mask, axis, pad):
        axis = tensor_axis(b, "compact", x, axis)
        if x.type.dtype.is_int and pad != int(pad):
            raise b.type_error(f"compact: pad {pad:g} is not an integer; x is {x.type}")
        if x.type.dtype.is_int or x.type.dtype.is_float:
            b._scalar(int(pad) if x.type.dtype.is_int else pad, x.type.dtype)  # fits the dtype
        values, lengths = b.emit(self.name, [x, mask], {"axis": axis, "pad": pad,
                                                        "length": _runtime_dim(b, "compact")})
        return values, lengths

    def infer(self, attrs, inputs, b):
        x, mask = inputs
        axis = attrs["axis"]
        if mask.dtype is not DType.bool or mask.shape != x.shape:
            raise b.type_error(f"compact: the mask must be a bool tensor of x's shape {x}; got {mask}",
                               "make one by comparing: ids != blank")
        if x.dtype is DType.bf16:
            raise b.type_error("compact: bf16 is not supported")
        shape = replace_dim(x.shape, axis, D.symbol(attrs["length"]))
        lengths = tuple(d for a, d in enumerate(x.shape) if a != axis)
        return [TensorType(x.dtype, shape), TensorType(DType.i64, lengths)]

    def lower(self, ctx, op, inputs):
        x, mask = inputs
        axis = op.attrs["axis"]
        dtype = op.inputs[0].type.dtype
        m = ctx.node("Cast", [mask], to=DType.i64.onnx)[0]
        one = ctx.const(np.asarray(1, dtype=np.int64), "one")
        # Each kept element's place in its line: the number of kept elements up to it, minus 1.
        pos = ctx.node("Sub", [ctx.node("CumSum", [m, ctx.const(np.asarray(axis, dtype=np.int64), "axis")])[0],
                               one])[0]
        lengths = ctx.node("ReduceSum", [m, ctx.ints([axis])], keepdims=0)[0]
        longest = ctx.node("ReduceMax", [ctx.node("Reshape", [lengths, ctx.ints([-1])])[0], ctx.ints([0])],
                           keepdims=1)[0]  # [1]: the longest line
        # Dropped elements all go to one extra slot past the end, which is cut off afterwards.
        target = ctx.node("Where", [mask, pos, ctx.node("Reshape", [longest, ctx.ints([])])[0]])[0]
        shape = ctx.node("Shape", [x])[0]
        rank = op.inputs[0].type.rank
        parts = [ctx.node("Slice", [shape, ctx.ints([0]), ctx.ints([axis])])[0]] if axis > 0 else []
        parts.append(ctx.node("Add", [longest, ctx.ints([1])])[0])
        if axis < rank - 1:
            parts.append(ctx.node("Slice", [shape, ctx.ints([axis + 1]), ctx.ints([rank])])[0])
        full = ctx.node("Concat", parts, axis=0)[0] if len(parts) > 1 else parts[0]
        pad = ctx.const(np.asarray(op.attrs["pad"], dtype=dtype.numpy), "pad")
        data = ctx.node("Expand", [pad, full])[0]
        scattered = ctx.node("ScatterElements", [data, target, x], axis=axis)[0]
        values = ctx.node("Slice", [scattered, ctx.ints([0]), longest, ctx.ints([axis])])[0]
        ctx.define_symbol(op.attrs["length"], values, axis)
        return [values, lengths]


# ---------------------------------------------------------------------- ranges and values


def _scalar_of(ctx, d: D.Dim, dtype: DType) -> str:
    """A scalar tensor of `dtype` holding dim `d` (its run-time value when symbolic)."""
    if isinstance(d, int):
        return ctx.const(np.asarray(d, dtype=dtype.numpy), "n")
    s = ctx.node("Reshape", [ctx.dim_tensor(d), ctx.ints([])])[0]
    return s if dtype is DType.i64 else ctx.node("Cast", [s], to=dtype.onnx)[0]


@register
class DimValue(OpDef):
    name = "dim_value"
    internal = True
    doc = "the run-time value of a symbolic dim as a scalar tensor (a dim used in tensor arithmetic)"
    cases = (
        Case("x * dim(x, 0)", {"x": "{f}[N, 3]"}),
        Case("x - dim(x, 1) // 2", {"x": "i64[2, T]"}),
        Case("tensor(dim(x, 0) * dim(x, 1))", {"x": "{f}[N, T]"}, note="i64 scalar"),
    )

    def infer(self, attrs, inputs, b):
        return [TensorType(attrs["dtype"], ())]

    def lower(self, ctx, op, inputs):
        return [_scalar_of(ctx, op.attrs["dim"], op.attrs["dtype"])]


_RANGE_DTYPES = (DType.i32, DType.i64, DType.f32, DType.f64)


@register
class Arange(OpDef):
    name = "arange"
    doc = ("arange(stop) or arange(start, stop, step=1, dtype=i64): start, start+step, ... before stop; "
           "start and stop may be symbolic dims (their run-time values). ONNX Range")
    signature = (Arg("start", "dim"), Arg("stop", "any", None), Arg("step", "int", 1),
                 Arg("dtype", "dtype", DType.i64))
    cases = (
        Case("x + arange(4, dtype={f})", {"x": "{f}[3, 4]"}),
        Case("cast(arange(T), {f}) * x", {"x": "{f}[T]"}, note="symbolic length"),
        Case("arange(2, T + 3, 2)", {"x": "{f}[T]"}, note="symbolic, step 2"),
        Case("arange(T, 0, -1, dtype=i32)", {"x": "{f}[N, T]"}, note="counting down"),
        Case("arange(1, 10, 3)", {"x": "{f}[2]"}),
        Case("arange(T + 1, T + 4) - dim(x, 0)", {"x": "{f}[T]"}, note="symbolic ends, known length"),
    )

    def build(self, b, start, stop, step, dtype):
        if stop is None:
            start, stop = 0, start
        if not D.is_dim(stop):
            raise b.type_error(f"arange: 'stop' expects an integer or a symbolic dim; got {stop!r}")
        if step == 0:
            raise b.error("arange: step must not be zero")
        if dtype not in _RANGE_DTYPES:
            raise b.type_error(f"arange: dtype must be one of i32, i64, f32, f64; got {dtype.value}")
        return b.emit(self.name, [], {"start": start, "stop": stop, "step": step, "dtype": dtype})[0]

    def infer(self, attrs, inputs, b):
        start, stop, step = attrs["start"], attrs["stop"], attrs["step"]
        if isinstance(start, int) and isinstance(stop, int):
            n: D.Dim = len(range(start, stop, step))
        else:
            span = D.sub(stop, start) if step > 0 else D.sub(start, stop)
            if isinstance(span, int):  # arange(N, N + 3): symbolic ends, a known length
                n = len(range(0, span, abs(step)))
            elif any(c < 0 for mono, c in span.terms if mono):
                # e.g. arange(N, 0): empty or negative for every large N, never a useful range
                raise b.error(f"arange({start}, {stop}, {step}) runs the wrong way: it is empty for large "
                              f"{', '.join(sorted(D.symbols(span) or D.symbols(stop) or D.symbols(start)))}",
                              "count down with a negative step: arange(N, 0, -1)")
            else:
                n = D.floordiv(D.add(span, abs(step) - 1), abs(step))
        if isinstance(n, int) and n <= 0:
            raise b.error(f"arange({start}, {stop}, {step}) is empty", "a tensor needs at least one element")
        return [TensorType(attrs["dtype"], (n,))]

    def lower(self, ctx, op, inputs):
        dtype = op.attrs["dtype"]
        parts = [_scalar_of(ctx, op.attrs[k], dtype) for k in ("start", "stop", "step")]
        return ctx.node("Range", parts)


@register
class Expand(OpDef):
    name = "expand"
    doc = "expand(x, d0, d1, ...): x broadcast to the given shape (dims may be symbolic). ONNX Expand"
    signature = (Arg("x", "tensor"), Arg("dims", "any", variadic=True))
    cases = (
        Case("expand(x, 3, 4)", {"x": "{f}[4]"}),
        Case("expand(x, N, 2, 5)", {"x": "{f}[N, 1, 5]"}),
        Case("expand(x, shape(y))", {"x": "i64[1, 1]", "y": "{f}[T, N]"}, note="another tensor's shape"),
    )

    def build(self, b, x, dims):
        target = _flat_args(dims)
        if not target:
            raise b.error("expand needs the target dims, e.g. expand(x, N, 4)")
        for d in target:
            if not D.is_dim(d) or (isinstance(d, int) and d <= 0):
                raise b.type_error(f"expand: dims must be positive integers or symbolic dims; got {d!r}")
        return b.emit(self.name, [x], {"shape": tuple(target)})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        target = tuple(attrs["shape"])
        from netc.compiler.shapes import broadcast_shapes

        if len(target) < x.rank or broadcast_shapes(x.shape, target) != target:
            raise b.error(f"expand: {x} does not broadcast to [{', '.join(str(d) for d in target)}]",
                          "each dim of x must equal the target's or be 1, counted from the last axis")
        return [TensorType(x.dtype, target)]

    def lower(self, ctx, op, inputs):
        return ctx.node("Expand", [inputs[0], ctx.shape_tensor(op.attrs["shape"])])
