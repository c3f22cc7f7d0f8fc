"""Convolution layers over [N, C, L] and [N, C, H, W]: each output channel j is
act(sum_i W_ji * x_i + b_j), a cross-correlation as in every framework, with stride, zero
padding, dilation and channel groups. Lowered to one ONNX `Conv` (plus the activation,
which onnxruntime fuses into the convolution)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import ClassVar

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, TensorType, Value
from netc.compiler.ops.activations import lower_activation
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.ops.spatial import (
    Window,
    layout,
    output_dims,
    parse_pad,
    per_axis,
    resolve_pads,
)
from netc.compiler.shapes import numel


def rank_hint(x: Value, spatial: int, fname: str) -> str:
    """A reshape suggestion for a tensor of the wrong rank: a missing channel axis, or a
    flat [N, F] image with F a square."""
    source = x.name if x.producer is None and x.param is None else "x"
    shape = [D.dim_str(d) for d in x.type.shape]
    width = x.type.shape[-1] if x.type.rank == 2 else None
    if len(shape) == spatial + 1:
        dims = ", ".join([shape[0], "1", *shape[1:]])
    elif spatial == 2 and isinstance(width, int) and math.isqrt(width) ** 2 == width:
        dims = f"{shape[0]}, 1, {math.isqrt(width)}, {math.isqrt(width)}"
    else:
        dims = "N, C, L" if spatial == 1 else "N, C, H, W"
    return f"reshape first: {source} -> reshape({dims}) -> {fname}(...)"


def conv_input_channels(b, name: str, x: Value, spatial: int, filters: int, groups: int) -> int:
    """The channels C of a (transposed) convolution's input x [N, C, *spatial], checked:
    x's rank and float dtype, C known at compile time, groups dividing C and filters."""
    if x.type.rank != spatial + 2:
        raise b.error(f"{name} expects a tensor {layout(spatial)} (rank {spatial + 2}); got {x.type} "
                      f"(rank {x.type.rank})", rank_hint(x, spatial, name))
    if not x.type.dtype.is_float:
        raise b.type_error(f"{name} needs a floating-point input; got {x.type}", "convert it first: cast(x, f32)")
    channels = b.static(x.type.shape[1], f"{name}: the input channels (axis 1)")
    if channels % groups:
        raise b.error(f"{name}: groups={groups} does not divide the {channels} input channels of {x.type}")
    if filters % groups:
        raise b.type_error(f"{name}: groups={groups} does not divide filters={filters}",
                           "each group needs the same number of output channels")
    return channels


def conv_params(b, weight_shape: tuple[int, ...], channels: int, filters: int, groups: int, dtype: DType,
                bias: bool, weight_init: Init, bias_init: Init) -> tuple[Value, Value | None]:
    """The weight (`weight_shape`, the kernel last) and the optional bias [filters] of a
    (transposed) convolution, both with fan-in C/groups * prod(kernel) and fan-out
    filters/groups * prod(kernel)."""
    taps = math.prod(weight_shape[2:])
    fan_in = channels // groups * taps
    fan_out = filters // groups * taps
    w = b.param("weight", weight_shape, dtype, weight_init, fan_in=fan_in, fan_out=fan_out)
    bv = b.param("bias", (filters,), dtype, bias_init, fan_in=fan_in, fan_out=fan_out) if bias else None
    return w, bv


class _Conv(OpDef):
    spatial: ClassVar[int]
    has_params = True
    float_dtypes = (DType.f32,)  # onnxruntime's CPU Conv kernel has no float64
    signature = (
        Arg("x", "tensor"),
        Arg("filters", "int", positive=True, doc="output channels"),
        Arg("kernel", "ints", positive=True, doc="an int or one per spatial axis"),
        Arg("stride", "ints", 1, positive=True),
        Arg("pad", "any", "valid", choices=("valid", "same", "causal"),
            doc='"valid", "same", an int, or a list'),
        Arg("dilation", "ints", 1, positive=True),
        Arg("groups", "int", 1, positive=True),
        Arg("bias", "bool", True),
        Arg("act", "act", None),
        Arg("weight_init", "init", Init("glorot_uniform")),
        Arg("bias_init", "init", Init("zeros")),
    )
    pad_words: ClassVar[tuple[str, ...]] = ("valid", "same")

    def build(self, b, x, filters, kernel, stride, pad, dilation, groups, bias, act, weight_init, bias_init):
        n = self.spatial
        channels = conv_input_channels(b, self.name, x, n, filters, groups)
        kernel = per_axis(b, self.name, "kernel", kernel, n)
        stride = per_axis(b, self.name, "stride", stride, n)
        dilation = per_axis(b, self.name, "dilation", dilation, n)
        spec = parse_pad(b, self.name, pad, n, self.pad_words)
        pads = resolve_pads(spec, x.type.shape[2:], kernel, stride, dilation)
        window = Window(kernel, stride, dilation, pads)
        output_dims(b, self.name, x.type, window)  # shape errors before any parameter is made
        w, bv = conv_params(b, (filters, channels // groups, *kernel), channels, filters, groups, x.type.dtype, bias,
                            weight_init, bias_init)
        attrs = {"kernel": kernel, "stride": stride, "dilation": dilation, "pads": pads, "groups": groups,
                 "act": act}
        return b.emit(self.name, [x, w, bv], attrs)[0]

    def infer(self, attrs, inputs, b):
        x, w, _ = inputs
        if x.shape[1] != w.shape[1] * attrs["groups"]:
            raise b.error(f"{self.name}: input {x} does not match weight {w} with groups={attrs['groups']}")
        window = Window(attrs["kernel"], attrs["stride"], attrs["dilation"], attrs["pads"])
        return [TensorType(x.dtype, (x.shape[0], w.shape[0], *output_dims(b, self.name, x, window)))]

    def flops(self, op):
        x, w = op.inputs[0].type, op.inputs[1].type
        out = op.outputs[0].type.shape
        per_output = 2 * w.shape[0] * math.prod(w.shape[1:])  # filters * C/groups * prod(kernel)
        return D.mul(numel((x.shape[0], *out[2:])), per_output)

    def lower(self, ctx, op, inputs):
        x, w, bias = inputs
        a = op.attrs
        window = Window(a["kernel"], a["stride"], a["dilation"], a["pads"])
        if window.pads is None and any(d > 1 for d in window.dilation):
            # onnxruntime's Conv rejects auto_pad=SAME_* with dilation: pad explicitly.
            x = _pad_same(ctx, x, op.inputs[0].type, window)
            window = replace(window, pads=(0,) * (2 * len(window.kernel)))
        y = ctx.node("Conv", [x, w] + ([bias] if bias else []), group=a["groups"], **window.onnx_attrs())[0]
        return [lower_activation(ctx, a["act"], y)]


def _pad_same(ctx, x: str, x_type: TensorType, window: Window) -> str:
    """Zero-pad `x` as SAME_UPPER would, computing the amounts from its run-time sizes:
    total = max((ceil(L / s) - 1) * s + extent - L, 0), the odd element at the end."""
    begins, ends = [ctx.ints([0, 0])], [ctx.ints([0, 0])]
    for i, (size, e, s) in enumerate(zip(x_type.shape[2:], window.extent, window.stride)):
        if isinstance(size, int):
            total = max((-(-size // s) - 1) * s + e - size, 0)
            begins.append(ctx.ints([total // 2]))
            ends.append(ctx.ints([total - total // 2]))
            continue
        length = ctx.node("Shape", [x], start=2 + i, end=3 + i)[0]
        out = ctx.node("Div", [ctx.node("Add", [length, ctx.ints([s - 1])])[0], ctx.ints([s])])[0]
        reach = ctx.node("Add", [ctx.node("Mul", [out, ctx.ints([s])])[0], ctx.ints([e - s])])[0]
        total = ctx.node("Max", [ctx.node("Sub", [reach, length])[0], ctx.ints([0])])[0]
        begin = ctx.node("Div", [total, ctx.ints([2])])[0]
        begins.append(begin)
        ends.append(ctx.node("Sub", [total, begin])[0])
    pads = ctx.node("Concat", begins + ends, axis=0)[0]
    return ctx.node("Pad", [x, pads])[0]


@register
class Conv1d(_Conv):
    name = "conv1d"
    spatial = 1
    doc = ('act(cross-correlation of x [N, C, L] with weight [filters, C/groups, k] + bias); '
           'pad="causal" left-pads dilation*(k-1) so output t sees inputs <= t')
    pad_words = ("valid", "same", "causal")
    cases = (
        Case("conv1d(x, 4, kernel=3)", {"x": "{f}[2, 3, 10]"}),
        Case("conv1d(x, 4, kernel=3, stride=2, pad=1)", {"x": "{f}[N, 3, 11]"}, note="stride, symmetric pad"),
        Case('conv1d(x, 5, kernel=3, pad="same", dilation=2, act=relu)', {"x": "{f}[N, 2, 9]"}),
        Case('conv1d(x, 4, kernel=2, pad="causal", dilation=4)', {"x": "{f}[N, 3, T]"},
             note="WaveNet-style causal, symbolic length"),
        Case('x -> conv1d(4, kernel=2, pad="causal") -> conv1d(4, kernel=2, pad="causal", dilation=2)'
             ' -> conv1d(4, kernel=2, pad="causal", dilation=4)', {"x": "{f}[2, 1, 16]"},
             note="dilation doubling per layer"),
        Case("conv1d(x, 6, kernel=3, groups=3, bias=false)", {"x": "{f}[2, 6, T]"}, note="groups"),
        Case("conv1d(x, 3, kernel=5, stride=3, pad=[3, 1])", {"x": "{f}[2, 2, T]"},
             note="explicit begin/end, symbolic length"),
        Case('conv1d(x, 2, kernel=4, stride=2, pad="same")', {"x": "{f}[1, 2, T]"},
             note="same with stride on a symbolic length: auto_pad"),
    )


@register
class Conv2d(_Conv):
    name = "conv2d"
    spatial = 2
    doc = "act(cross-correlation of x [N, C, H, W] with weight [filters, C/groups, kh, kw] + bias)"
    cases = (
        Case("conv2d(x, 1, kernel=3)", {"x": "{f}[1, 1, 6, 6]"}, note="tutorial: 6x6, 3x3 filter -> 4x4"),
        Case("x -> conv2d(1, kernel=3) -> maxpool(2)", {"x": "{f}[1, 1, 6, 6]"},
             note="tutorial: then 2x2 max pooling -> 2x2"),
        Case("conv2d(x, 1, kernel=3, stride=2)", {"x": "{f}[1, 1, 6, 6]"}, note="tutorial: stride 2 -> 2x2"),
        Case("conv2d(x, 2, kernel=3, stride=2, pad=1)", {"x": "{f}[N, 1, 6, 6]"}, note="stride 2, pad 1 -> 3x3"),
        Case("conv2d(x, 8, kernel=[3, 2], stride=[2, 1], pad=[1, 0], act=relu)", {"x": "{f}[N, 3, 9, 8]"}),
        Case('conv2d(x, 4, kernel=3, pad="same", dilation=2)', {"x": "{f}[N, 2, H, W]"},
             note="same on symbolic spatial dims"),
        Case('conv2d(x, 4, kernel=3, stride=2, pad="same", bias=false)', {"x": "{f}[N, 2, H, W]"},
             note="same + stride on symbolic dims: auto_pad"),
        Case('conv2d(x, 4, kernel=3, stride=2, pad="same")', {"x": "{f}[2, 2, 7, 8]"},
             note="same + stride on static dims: explicit pads"),
        Case("conv2d(x, 6, kernel=3, groups=2, pad=[0, 1, 2, 1])", {"x": "{f}[2, 4, 7, 6]"},
             note="groups, explicit begin/end pads"),
        Case("conv2d(x, 8, kernel=3, groups=4, pad=1, act=tanh)", {"x": "{f}[N, 4, 5, 5]"},
             note="depthwise with a channel multiplier"),
        Case("conv2d(x, 3, kernel=[1, 3], dilation=[1, 2], stride=[1, 2])", {"x": "{f}[N, 3, H, 11]"}),
        Case('conv2d(x, 3, kernel=3, dilation=2, stride=[2, 3], pad="same")', {"x": "{f}[N, 2, H, 7]"},
             note="same + stride + dilation on a symbolic dim: an explicit Pad from run-time sizes"),
    )
