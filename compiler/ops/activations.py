"""Activation functions. Each is a unary op usable directly (`relu(x)`, `x -> relu`) and, with
its default attributes, as the `act=` of dense and convolution layers."""

from __future__ import annotations

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, Op, TensorType, Value
from netc.compiler.ops.elementwise import _Unary
from netc.compiler.ops.registry import REGISTRY, Arg, Case, register
from netc.compiler.shapes import numel


class _Activation(_Unary):
    activation = True

    def infer(self, attrs, inputs, b):
        out = super().infer(attrs, inputs, b)
        if "axis" in attrs:
            b.axis(attrs["axis"], inputs[0].rank)
        return out

    def hoistable(self, op, varying):
        # An axis counted from the front would move when a leading axis is added.
        return op.attrs.get("axis", -1) < 0 and super().hoistable(op, varying)


def lower_activation(ctx, act: str | None, x: str, dtype: DType = DType.f32) -> str:
    """Apply activation `act` (with its default attributes) to ONNX value `x` of `dtype`
    (the constants some activations make, e.g. hard_tanh's bounds, take that dtype)."""
    if act is None:
        return x
    opdef = REGISTRY[act]
    attrs = {a.name: a.default for a in opdef.signature if a.kind != "tensor"}
    operand = Value(x, TensorType(dtype, ()))
    return opdef.lower(ctx, Op(act, [operand], [], attrs, None), [x])[0]


def _cases(expr: str) -> tuple[Case, ...]:
    return (Case(expr, {"x": "{f}[3, 7]"}), Case(expr, {"x": "{f}[N, 2, 5]"}))


@register
class Relu(_Activation):
    name = "relu"
    onnx_op = "Relu"
    doc = "max(x, 0)"
    cases = _cases("relu(x)")


@register
class Sigmoid(_Activation):
    name = "sigmoid"
    onnx_op = "Sigmoid"
    doc = "1 / (1 + e^-x)"
    cases = (*_cases("x -> sigmoid"), Case("sigmoid(x * 40)", {"x": "{f}[4, 9]"}, note="saturated"))


@register
class Tanh(_Activation):
    name = "tanh"
    onnx_op = "Tanh"
    doc = "hyperbolic tangent"
    cases = _cases("tanh(x)")


@register
class Softplus(_Activation):
    float_dtypes = (DType.f32,)  # onnxruntime's CPU kernel has no float64
    name = "softplus"
    onnx_op = "Softplus"
    doc = "log(1 + e^x)"
    cases = _cases("softplus(x)")


@register
class Swish(_Activation):
    name = "swish"
    doc = "x * sigmoid(x) (SiLU)"
    cases = _cases("swish(x)")

    def lower(self, ctx, op, inputs):
        # The ONNX Swish op is not implemented by onnxruntime at every opset; Mul(Sigmoid) is.
        (x,) = inputs
        return ctx.node("Mul", [x, ctx.node("Sigmoid", [x])[0]])

    def flops(self, op):
        return D.mul(4, numel(op.outputs[0].type.shape))


@register
class LeakyRelu(_Activation):
    float_dtypes = (DType.f32,)  # onnxruntime's CPU kernel has no float64
    name = "leaky_relu"
    doc = "x if x > 0 else alpha * x"
    signature = (Arg("x", "tensor"), Arg("alpha", "float", 0.01))
    cases = (*_cases("leaky_relu(x)"), Case("leaky_relu(x, alpha=0.2)", {"x": "{f}[4, 3]"}))

    def lower(self, ctx, op, inputs):
        return ctx.node("LeakyRelu", inputs, alpha=op.attrs["alpha"])


@register
class Elu(_Activation):
    float_dtypes = (DType.f32,)  # onnxruntime's CPU kernel has no float64
    name = "elu"
    doc = "x if x > 0 else alpha * (e^x - 1)"
    signature = (Arg("x", "tensor"), Arg("alpha", "float", 1.0))
    cases = (*_cases("elu(x)"), Case("elu(x, alpha=0.5)", {"x": "{f}[4, 3]"}))

    def lower(self, ctx, op, inputs):
        return ctx.node("Elu", inputs, alpha=op.attrs["alpha"])


@register
class Gelu(_Activation):
    float_dtypes = (DType.f32,)  # onnxruntime's CPU kernel has no float64
    name = "gelu"
    doc = "x * Phi(x), exact (erf) or the tanh approximation"
    signature = (Arg("x", "tensor"), Arg("approximate", "choice", "none", choices=("none", "tanh")))
    cases = (*_cases("gelu(x)"), Case('gelu(x, approximate="tanh")', {"x": "{f}[4, 3]"}))

    def lower(self, ctx, op, inputs):
        return ctx.node("Gelu", inputs, approximate=op.attrs["approximate"])


@register
class HardTanh(_Activation):
    name = "hard_tanh"
    doc = "clip(x, min, max), by default to [-1, 1]"
    signature = (Arg("x", "tensor"), Arg("min", "float", -1.0), Arg("max", "float", 1.0))
    cases = (*_cases("hard_tanh(x * 3)"), Case("hard_tanh(x, min=0.0, max=6.0)", {"x": "{f}[4, 3]"}))

    def infer(self, attrs, inputs, b):
        if attrs["min"] > attrs["max"]:
            raise b.type_error(f"hard_tanh: min {attrs['min']} is above max {attrs['max']}")
        return super().infer(attrs, inputs, b)

    def lower(self, ctx, op, inputs):
        dtype = ctx.dtype_of(op, inputs[0])
        lo = ctx.const(np.array(op.attrs["min"], dtype=dtype), "min")
        hi = ctx.const(np.array(op.attrs["max"], dtype=dtype), "max")
        return ctx.node("Clip", [inputs[0], lo, hi])


@register
class Softmax(_Activation):
    name = "softmax"
    doc = "e^x / sum(e^x) along `axis` (default the last)"
    signature = (Arg("x", "tensor"), Arg("axis", "int", -1))
    cases = (
        *_cases("softmax(x)"),
        Case("softmax(x, axis=1)", {"x": "{f}[2, 3, 4]"}),
        Case("softmax(x * 1000)", {"x": "{f}[3, 5]"}, note="large logits"),
    )

    def lower(self, ctx, op, inputs):
        return ctx.node("Softmax", inputs, axis=op.attrs["axis"])

    def flops(self, op):
        return D.mul(5, numel(op.outputs[0].type.shape))


@register
class LogSoftmax(_Activation):
    name = "log_softmax"
    doc = "log(softmax(x)) along `axis`, computed stably"
    signature = (Arg("x", "tensor"), Arg("axis", "int", -1))
    cases = (*_cases("log_softmax(x)"), Case("log_softmax(x * 1000, axis=0)", {"x": "{f}[3, 5]"}))

    def lower(self, ctx, op, inputs):
        return ctx.node("LogSoftmax", inputs, axis=op.attrs["axis"])


@register
class Identity(_Activation):
    name = "identity"
    onnx_op = "Identity"
    doc = "x unchanged (the linear activation)"
    float_only = False
    numeric_only = False
    cases = _cases("identity(x)")
