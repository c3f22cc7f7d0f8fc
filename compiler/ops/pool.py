"""Pooling over [N, C, L] or [N, C, H, W] (1-D or 2-D, chosen by the input's rank): max,
average and L2 (sqrt of the sum of squares, ONNX `LpPool` with p = 2) over sliding
windows, and their global forms over the whole of each feature map."""

from __future__ import annotations

import math
from typing import ClassVar

from netc.compiler import dims as D
from netc.compiler.ir import DType, TensorType
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.ops.spatial import (
    Window,
    axis_names,
    ceil_effects,
    output_dims,
    parse_pad,
    per_axis,
    resolve_pads,
)
from netc.compiler.shapes import numel

_RANKS = "[N, C, L] or [N, C, H, W] (rank 3 or 4)"


def _check_input(b, fname: str, x: TensorType) -> None:
    if x.rank not in (3, 4):
        hint = "add a channel axis first: x -> reshape(N, 1, L)" if x.rank == 2 else \
            "pooling slides over the axes after [N, C]"
        raise b.error(f"{fname} expects a tensor {_RANKS}; got {x} (rank {x.rank})", hint)
    if not x.dtype.is_float:
        raise b.type_error(f"{fname} needs a floating-point input; got {x}", "convert it first: cast(x, f32)")


class _Pool(OpDef):
    onnx_op: ClassVar[str]
    window_cost: ClassVar[int] = 1  # FLOPs per window element
    float_dtypes = (DType.f32,)  # onnxruntime's CPU AveragePool and LpPool kernels have no float64
    signature = (
        Arg("x", "tensor"),
        Arg("kernel", "ints", positive=True, doc="an int or one per spatial axis"),
        Arg("stride", "ints", None, positive=True, doc="default: the kernel"),
        Arg("pad", "any", 0, choices=("valid", "same"),
            doc='"valid", "same", an int, or a list'),
        Arg("ceil", "bool", False, doc='round the output length up (a last, partial window); pad="same" fixes it already'),
    )

    def build(self, b, x, kernel, stride, pad, ceil, **extra):
        _check_input(b, self.name, x.type)
        n = x.type.rank - 2
        kernel = per_axis(b, self.name, "kernel", kernel, n)
        stride = kernel if stride is None else per_axis(b, self.name, "stride", stride, n)
        spec = parse_pad(b, self.name, pad, n, ("valid", "same"))
        pads = resolve_pads(spec, x.type.shape[2:], kernel, stride, (1,) * n)
        if pads is not None:
            names = axis_names(n)
            for i, k in enumerate(kernel):
                if max(pads[i], pads[n + i]) >= k:
                    raise b.type_error(f"{self.name}: padding {max(pads[i], pads[n + i])} on axis {names[i]} "
                                       f"must be smaller than the kernel ({k})",
                                       "a window made only of padding has nothing to pool")
        window = Window(kernel, stride, (1,) * n, pads, ceil and spec != "same")
        output_dims(b, self.name, x.type, window)  # the user's ceil may fail for symbolic dims
        changes = any(c for c, _ in ceil_effects(x.type, window)) if window.ceil else False
        window = Window(kernel, stride, window.dilation, pads, changes)
        attrs = {"kernel": kernel, "stride": stride, "pads": pads, "ceil": window.ceil, **extra}
        return b.emit(self.name, [x], attrs)[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        _check_input(b, self.name, x)
        window = _window(attrs)
        return [TensorType(x.dtype, (*x.shape[:2], *output_dims(b, self.name, x, window)))]

    def flops(self, op):
        kernel = op.attrs["kernel"]
        return D.mul(numel(op.outputs[0].type.shape), self.window_cost * math.prod(kernel))

    def lower(self, ctx, op, inputs):
        window = _window(op.attrs)
        effects = ceil_effects(op.inputs[0].type, window) if window.ceil else ()
        if not any(drops for _, drops in effects):
            return [self._node(ctx, op, inputs[0], window)]
        # One ceil_mode for all axes would drop a window on one axis that onnx's shape
        # inference keeps. The pools are separable (max of maxes, mean of means over a
        # rectangular window and its rectangular padding), so pool one axis at a time,
        # each with its own ceil_mode.
        n = len(window.kernel)
        y = inputs[0]
        for i, (changes, _) in enumerate(effects):
            ones, zeros = [1] * n, [0] * (2 * n)
            kernel, stride, pads = list(ones), list(ones), list(zeros)
            kernel[i], stride[i] = window.kernel[i], window.stride[i]
            pads[i], pads[n + i] = window.pads[i], window.pads[n + i]
            axis = Window(tuple(kernel), tuple(stride), tuple(ones), tuple(pads), changes)
            y = self._node(ctx, op, y, axis)
        return [y]

    def _node(self, ctx, op, x: str, window: Window) -> str:
        attrs = window.onnx_attrs(dilations=False)
        if window.ceil:
            attrs["ceil_mode"] = 1
        return ctx.node(self.onnx_op, [x], **attrs, **self.onnx_attrs(op))[0]

    def onnx_attrs(self, op) -> dict[str, int]:
        return {}


def _window(attrs) -> Window:
    kernel = attrs["kernel"]
    return Window(kernel, attrs["stride"], (1,) * len(kernel), attrs["pads"], attrs["ceil"])


@register
class MaxPool(_Pool):
    name = "maxpool"
    onnx_op = "MaxPool"
    doc = "maximum over each window (stride defaults to the kernel; padding never wins)"
    float_dtypes = (DType.f32, DType.f64)
    cases = (
        Case("maxpool(x, 2)", {"x": "{f}[1, 1, 4, 4]"}, note="tutorial: 4x4 -> 2x2"),
        Case("maxpool(x, 3, stride=2, pad=1)", {"x": "{f}[N, 3, 9, 8]"}, note="ResNet stem"),
        Case("maxpool(x, 2)", {"x": "{f}[N, 2, T]"}, note="1-D, symbolic length"),
        Case("maxpool(x, [2, 3], stride=[1, 2], pad=[1, 0, 0, 2])", {"x": "{f}[2, 2, 5, 7]"},
             note="explicit begin/end pads"),
        Case("maxpool(x, 3, stride=2, ceil=true)", {"x": "{f}[2, 2, 8, 6]"}, note="ceil mode"),
        Case("maxpool(x, 2, stride=2, pad=1, ceil=true)", {"x": "{f}[2, 2, 5, 6]"},
             note="ceil mode drops a window starting in the padding"),
        Case("maxpool(x, [3, 2], stride=2, pad=[0, 1], ceil=true)", {"x": "{f}[2, 2, 8, 5]"},
             note="ceil mode adds a window on H and drops one on W: one axis at a time"),
        Case("maxpool(x, 3, stride=2, pad=1, ceil=true)", {"x": "{f}[N, 2, H, W]"}, note="ceil mode, symbolic"),
        Case('maxpool(x, 3, stride=2, pad="same")', {"x": "{f}[N, 2, H, W]"}, note="same: auto_pad"),
        Case('maxpool(x, 3, stride=1, pad="same")', {"x": "{f}[2, 2, 5, T]"}),
        Case("maxpool(x - 10, 2, pad=1)", {"x": "{f}[2, 2, 5, 5]"}, note="negative inputs beside padding"),
    )


@register
class AvgPool(_Pool):
    name = "avgpool"
    onnx_op = "AveragePool"
    doc = "mean over each window; count_pad=true also counts the zero padding in the divisor"
    signature = (*_Pool.signature, Arg("count_pad", "bool", False, doc="padding counts in the mean"))
    cases = (
        Case("avgpool(x, 2)", {"x": "{f}[2, 3, 6, 6]"}),
        Case("avgpool(x, 3, stride=2, pad=1)", {"x": "{f}[N, 2, 7, 8]"}, note="padding not counted"),
        Case("avgpool(x, 3, stride=2, pad=1, count_pad=true)", {"x": "{f}[N, 2, 7, 8]"}),
        Case("avgpool(x, 3, stride=2, pad=1, ceil=true, count_pad=true)", {"x": "{f}[2, 2, 8, 6]"},
             note="ceil-mode overflow is not padding"),
        Case("avgpool(x, 2, stride=2, pad=1, ceil=true)", {"x": "{f}[2, 2, 5, 6]"}),
        Case("avgpool(x, [2, 3], stride=[3, 2], pad=1, ceil=true, count_pad=true)", {"x": "{f}[2, 2, 5, 8]"},
             note="ceil mode drops a window on H and adds one on W"),
        Case("avgpool(x, [3, 2], stride=2, pad=[0, 1], ceil=true)", {"x": "{f}[2, 2, 8, 5]"}),
        Case("avgpool(x, 4, stride=3, pad=1, ceil=true)", {"x": "{f}[N, 2, T]"}, note="1-D ceil, symbolic"),
        Case('avgpool(x, 2, stride=2, pad="same", count_pad=true)', {"x": "{f}[N, 2, H, W]"}),
        Case('avgpool(x, 3, stride=2, pad="same")', {"x": "{f}[2, 2, 7, 6]"}),
    )

    def build(self, b, x, kernel, stride, pad, ceil, count_pad):
        return super().build(b, x, kernel, stride, pad, ceil, count_pad=count_pad)

    def onnx_attrs(self, op):
        return {"count_include_pad": int(op.attrs["count_pad"])}


@register
class L2Pool(_Pool):
    name = "l2pool"
    onnx_op = "LpPool"
    doc = "sqrt of the sum of squares over each window (LpPool, p = 2)"
    window_cost = 2
    cases = (
        Case("l2pool(x, 2)", {"x": "{f}[2, 3, 6, 6]"}),
        Case("l2pool(x, 3, stride=2, pad=1, ceil=true)", {"x": "{f}[N, 2, 8, 7]"}),
        Case("l2pool(x, [3, 2], stride=2, pad=[0, 1], ceil=true)", {"x": "{f}[2, 2, 8, 5]"}),
        Case("l2pool(x * 0.0, 2)", {"x": "{f}[2, 2, 4, 4]"}, note="all-zero windows: sqrt(0)"),
        Case("l2pool(relu(x - 1.0), 2, pad=1)", {"x": "{f}[2, 2, 5, 5]"}, note="mostly zero windows"),
        Case("l2pool(x, 2, stride=1)", {"x": "{f}[N, 2, T]"}, note="1-D, symbolic"),
        Case('l2pool(x, 2, stride=2, pad="same")', {"x": "{f}[N, 2, H, W]"}),
    )

    def onnx_attrs(self, op):
        return {"p": 2}


class _GlobalPool(OpDef):
    onnx_op: ClassVar[str]
    window_cost: ClassVar[int] = 1
    float_dtypes = (DType.f32,)  # onnxruntime's CPU global pooling kernels have no float64
    signature = (Arg("x", "tensor"),)

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        _check_input(b, self.name, x)
        return [TensorType(x.dtype, (*x.shape[:2], *(1,) * (x.rank - 2)))]

    def flops(self, op):
        return D.mul(numel(op.inputs[0].type.shape), self.window_cost)

    def lower(self, ctx, op, inputs):
        return ctx.node(self.onnx_op, inputs, **({"p": 2} if self.onnx_op == "GlobalLpPool" else {}))


def _global_cases(fname: str) -> tuple[Case, ...]:
    return (Case(f"{fname}(x)", {"x": "{f}[N, 3, H, W]"}),
            Case(f"x -> {fname}", {"x": "{f}[2, 4, 7]"}, note="1-D"))


@register
class GlobalMaxPool(_GlobalPool):
    name = "global_maxpool"
    onnx_op = "GlobalMaxPool"
    doc = "maximum over each whole feature map; [N, C, H, W] -> [N, C, 1, 1]"
    cases = _global_cases("global_maxpool")


@register
class GlobalAvgPool(_GlobalPool):
    name = "global_avgpool"
    onnx_op = "GlobalAveragePool"
    doc = "mean over each whole feature map; [N, C, H, W] -> [N, C, 1, 1]"
    cases = _global_cases("global_avgpool")


@register
class GlobalL2Pool(_GlobalPool):
    name = "global_l2pool"
    onnx_op = "GlobalLpPool"
    doc = "sqrt of the sum of squares over each whole feature map; [N, C, H, W] -> [N, C, 1, 1]"
    window_cost = 2
    cases = (*_global_cases("global_l2pool"),
             Case("global_l2pool(x * 0.0)", {"x": "{f}[2, 3, 4, 4]"}, note="sqrt(0)"))

    def lower(self, ctx, op, inputs):
        if ctx.opset < 22:
            return super().lower(ctx, op, inputs)
        # onnxruntime 1.32 has no GlobalLpPool kernel at opset >= 22: the same reduction.
        axes = list(range(2, op.inputs[0].type.rank))
        return ctx.node("ReduceL2", [inputs[0], ctx.ints(axes)], keepdims=1)
