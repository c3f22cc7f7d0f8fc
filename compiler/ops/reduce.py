"""Reductions over axes (sum, mean, max, min, prod) and the index of the extreme (argmax,
argmin).

`max` and `min` share their names with the compile-time functions over numbers
(`max(3, 4)`); those dispatch here when given a tensor (compiler/intrinsics.py), so
`max(x, axis=1)` and `x -> max(axis=-1)` reduce.
"""

from __future__ import annotations

from typing import Any

from netc.compiler.ir import DType, TensorType
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import numel, tensor_axis


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_numeric(b, name: str, t: TensorType, float_only: bool = False) -> None:
    if float_only and not t.dtype.is_float:
        raise b.type_error(f"{name} needs a floating-point tensor; got {t}", "convert with cast(x, f32)")
    if t.dtype is DType.bool:
        raise b.type_error(f"{name} needs a numeric tensor; got {t}", "convert with cast(x, i64)")


class _Reduce(OpDef):
    signature = (Arg("x", "tensor"), Arg("axis", "any", None), Arg("keepdims", "bool", False))
    onnx_op = ""
    float_only = False

    def build(self, b, x, axis, keepdims):
        rank = x.type.rank
        if axis is None:
            axes = tuple(range(rank))
        else:
            given = list(axis) if isinstance(axis, list | tuple) else [axis]
            if not all(_is_int(a) for a in given):
                raise b.type_error(f"{self.name}: 'axis' expects none, an integer or a list of integers; "
                                   f"got {axis!r}")
            axes = tuple(sorted({b.axis(a, rank, f"{self.name}: axis") for a in given}))
            if len(axes) != len(given):
                raise b.error(f"{self.name}: axis repeated in {given}")
        return b.emit(self.name, [x], {"axes": axes, "keepdims": keepdims})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        _check_numeric(b, self.name, x, self.float_only)
        axes, keep = attrs["axes"], attrs["keepdims"]
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
        return [TensorType(x.dtype, shape)]

    def flops(self, op):
        return numel(op.inputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        axes = list(op.attrs["axes"])
        keepdims = int(op.attrs["keepdims"])
        if not axes:  # a scalar: nothing to reduce
            return ctx.node("Identity", inputs)
        return ctx.node(self.onnx_op, [inputs[0], ctx.ints(axes)], keepdims=keepdims)


def _cases(op: str, float_only: bool = False) -> tuple[Case, ...]:
    cases = (
        Case(f"{op}(x)", {"x": "{f}[3, 4]"}, note="every axis"),
        Case(f"{op}(x, axis=1)", {"x": "{f}[N, 5, 2]"}),
        Case(f"x -> {op}(axis=-1, keepdims=true)", {"x": "{f}[N, 3]"}),
        Case(f"{op}(x, [0, 2])", {"x": "{f}[2, N, 3]"}, note="two axes"),
        Case(f"{op}(x, axis=(1, 2), keepdims=true)", {"x": "{f}[N, 3, 2, 2]"}, note="spatial"),
    )
    if not float_only:
        cases += (Case(f"{op}(x, axis=0)", {"x": "i64[4, 3]"}), Case(f"{op}(x, 1)", {"x": "i32[N, 6]"}))
    return cases


@register
class Sum(_Reduce):
    name = "sum"
    onnx_op = "ReduceSum"
    doc = "sum over the given axes (none: all)"
    cases = _cases("sum")


@register
class Mean(_Reduce):
    name = "mean"
    onnx_op = "ReduceMean"
    float_only = True
    doc = "arithmetic mean over the given axes (none: all)"
    cases = _cases("mean", float_only=True)


@register
class Max(_Reduce):
    name = "max"
    onnx_op = "ReduceMax"
    doc = "largest element over the given axes (none: all); max(a, b, ...) of numbers is the compile-time max"
    cases = _cases("max")


@register
class Min(_Reduce):
    name = "min"
    onnx_op = "ReduceMin"
    doc = "smallest element over the given axes (none: all); min(a, b, ...) of numbers is the compile-time min"
    cases = _cases("min")


@register
class Prod(_Reduce):
    name = "prod"
    onnx_op = "ReduceProd"
    doc = "product over the given axes (none: all)"
    cases = _cases("prod")


class _ArgReduce(OpDef):
    signature = (Arg("x", "tensor"), Arg("axis", "int", -1), Arg("keepdims", "bool", False))
    onnx_op = ""

    def build(self, b, x, axis, keepdims):
        axis = tensor_axis(b, self.name, x, axis)
        return b.emit(self.name, [x], {"axis": axis, "keepdims": keepdims})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        _check_numeric(b, self.name, x)
        axis = attrs["axis"]
        shape = list(x.shape)
        if attrs["keepdims"]:
            shape[axis] = 1
        else:
            del shape[axis]
        return [TensorType(DType.i64, tuple(shape))]

    def flops(self, op):
        return numel(op.inputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        # select_last_index=0: ties go to the first index, as in NumPy.
        return ctx.node(self.onnx_op, inputs, axis=op.attrs["axis"], keepdims=int(op.attrs["keepdims"]),
                        select_last_index=0)


def _arg_cases(op: str) -> tuple[Case, ...]:
    return (
        Case(f"{op}(x)", {"x": "{f}[3, 7]"}),
        Case(f"x -> {op}(axis=0)", {"x": "{f}[4, N]"}),
        Case(f"{op}(x, 1, keepdims=true)", {"x": "{f}[N, 5, 2]"}),
        Case(f"{op}(x)", {"x": "i64[N, 6]"}, int_high=3, note="ties: the first index"),
        Case(f"{op}(x, axis=-2)", {"x": "i32[2, 5, 3]"}, int_high=2, note="ties"),
    )


@register
class ArgMax(_ArgReduce):
    name = "argmax"
    onnx_op = "ArgMax"
    doc = "index (i64) of the largest element along an axis; ties give the first"
    cases = _arg_cases("argmax")


@register
class ArgMin(_ArgReduce):
    name = "argmin"
    onnx_op = "ArgMin"
    doc = "index (i64) of the smallest element along an axis; ties give the first"
    cases = _arg_cases("argmin")
