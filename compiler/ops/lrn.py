"""Local response normalisation across channels (AlexNet, Krizhevsky et al. 2012), ONNX `LRN`:

    y[n, c, ...] = x[n, c, ...] / (bias + alpha / size * sum_{i in window(c)} x[n, i, ...]^2) ^ beta

window(c) = [c - (size - 1)/2, c + (size - 1)/2] clipped to the channels: `size` is odd
(onnxruntime's kernel requires it; for even sizes ONNX and PyTorch would also disagree on
which side gets the larger half). This is PyTorch's `nn.LocalResponseNorm` (whose `k` is
`bias`).
"""

from __future__ import annotations

from netc.compiler import dims as D
from netc.compiler.ir import DType
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import numel


@register
class Lrn(OpDef):
    name = "lrn"
    doc = ("local response normalisation across channels: x / (bias + alpha/size * sum of x^2 over `size` "
           "neighbouring channels)^beta (AlexNet: size=5, alpha=1e-4, beta=0.75, bias=2)")
    float_dtypes = (DType.f32,)  # onnxruntime's CPU LRN kernel has no float64
    signature = (
        Arg("x", "tensor"),
        Arg("size", "int", positive=True, doc="channels in each window"),
        Arg("alpha", "float", 1e-4),
        Arg("beta", "float", 0.75),
        Arg("bias", "float", 1.0, doc="PyTorch's k"),
    )
    cases = (
        Case("lrn(x, 5, alpha=0.0001, beta=0.75, bias=2.0)", {"x": "{f}[N, 7, 4, 4]"}, note="AlexNet"),
        Case("lrn(x * 10, 3, alpha=0.5, beta=0.5)", {"x": "{f}[2, 4, H, W]"}, note="strong normalisation"),
        Case("lrn(x, 3, alpha=0.2)", {"x": "{f}[2, 6, T]"}, note="rank 3"),
        Case("lrn(x, 9)", {"x": "{f}[2, 3, 2, 2]"}, note="window wider than the channels"),
    )

    def build(self, b, x, size, alpha, beta, bias):
        if x.type.rank < 3:
            raise b.error(f"lrn normalises across the channel axis 1 of [N, C, ...] (rank >= 3); got {x.type}",
                          "for [N, C] features, add a spatial axis: x -> unsqueeze(2)")
        if not x.type.dtype.is_float:
            raise b.type_error(f"lrn needs a floating-point tensor; got {x.type}", "convert with cast(x, f32)")
        if size % 2 == 0:
            raise b.type_error(f"lrn: size must be odd (a window centred on each channel); got {size}",
                               f"use size={size - 1} or size={size + 1}")
        if bias <= 0:
            # bias > 0 keeps the denominator positive for every input (alpha >= 0 is checked too).
            raise b.type_error(f"lrn: bias must be positive; got {bias:g}")
        if alpha < 0:
            raise b.type_error(f"lrn: alpha must not be negative; got {alpha:g}")
        return b.emit(self.name, [x], {"size": size, "alpha": alpha, "beta": beta, "bias": bias})[0]

    def infer(self, attrs, inputs, b):
        return [inputs[0]]

    def flops(self, op):
        # the window's squares and sum, then scale, add, power and divide
        return D.mul(numel(op.inputs[0].type.shape), 2 * op.attrs["size"] + 4)

    def lower(self, ctx, op, inputs):
        a = op.attrs
        attrs = {"size": a["size"], "alpha": a["alpha"], "beta": a["beta"], "bias": a["bias"]}
        if op.inputs[0].type.rank == 4:
            return ctx.node("LRN", inputs, **attrs)
        # onnxruntime's LRN kernel takes rank 4 only: the window is across channels, so the
        # axes after them fold into one.
        (x,) = inputs
        flat = ctx.node("Reshape", [x, ctx.ints([0, 0, -1, 1])])[0]
        y = ctx.node("LRN", [flat], **attrs)[0]
        return ctx.node("Reshape", [y, ctx.node("Shape", [x])[0]])
