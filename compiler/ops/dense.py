"""Fully connected layer: a = act(x W + b), over the last axis of x."""

from __future__ import annotations

from netc.compiler import dims as D
from netc.compiler.ir import Init, TensorType
from netc.compiler.ops.activations import lower_activation
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import numel


@register
class Dense(OpDef):
    name = "dense"
    doc = "act(x @ weight + bias); weight is [in, units]"
    has_params = True
    step_polymorphic = True
    signature = (
        Arg("x", "tensor"),
        Arg("units", "int", positive=True),
        Arg("act", "act", None),
        Arg("bias", "bool", True),
        Arg("weight_init", "init", Init("glorot_uniform")),
        Arg("bias_init", "init", Init("zeros")),
    )
    cases = (
        Case("dense(x, 5)", {"x": "{f}[3, 4]"}),
        Case("x -> dense(6, act=relu) -> dense(2, act=sigmoid, bias=false)", {"x": "{f}[N, 4]"}),
        Case("dense(x, 3, act=tanh, bias_init=0.5)", {"x": "{f}[T, N, 4]"}, note="rank 3"),
        Case("dense(x * 3, 3, act=hard_tanh)", {"x": "{f}[N, 4]"}, note="an act= with constants of x's dtype"),
    )

    def build(self, b, x, units, act, bias, weight_init, bias_init):
        if x.type.rank < 1:
            raise b.error(f"dense needs a tensor of rank >= 1; got {x.type}")
        if not x.type.dtype.is_float:
            raise b.type_error(f"dense needs a floating-point input; got {x.type}",
                               "embed integer ids first: ids -> embed(vocab, dim)")
        width = b.static(x.type.shape[-1], "dense: the input width (last axis)")
        dtype = x.type.dtype
        w = b.param("weight", (width, units), dtype, weight_init, fan_in=width, fan_out=units)
        bv = b.param("bias", (units,), dtype, bias_init, fan_in=width, fan_out=units) if bias else None
        return b.emit(self.name, [x, w, bv], {"act": act})[0]

    def infer(self, attrs, inputs, b):
        x, w, _bias = inputs
        if x.shape[-1] != w.shape[0]:
            raise b.error(f"dense: input width {x.shape[-1]} does not match weight {w}")
        return [TensorType(x.dtype, (*x.shape[:-1], w.shape[1]))]

    def hoistable(self, op, varying):
        # Leading axes of x are batch axes; the weight and bias are not per step.
        return bool(varying[0]) and not any(varying[1:])

    def flops(self, op):
        x, w = op.inputs[0].type, op.inputs[1].type
        return D.mul(numel(x.shape[:-1]), 2 * w.shape[0] * w.shape[1])

    def lower(self, ctx, op, inputs):
        x, w, bias = inputs
        if op.inputs[0].type.rank == 2 and (bias or op.attrs["act"]):
            # Gemm (+ activation) is what onnxruntime fuses into FusedGemm.
            y = ctx.node("Gemm", [x, w] + ([bias] if bias else []))[0]
        else:
            # A bias-less linear 2-D dense stays a MatMul too: onnxruntime merges a MatMul
            # with an Add after it (and an activation after that) into one Gemm / FusedGemm,
            # but leaves a Gemm without C and that Add apart, and a step block's
            # `dense(h, H, bias=false) + x_t` (its x_t projection hoisted) is that case.
            y = ctx.node("MatMul", [x, w])[0]
            if bias:
                y = ctx.node("Add", [y, bias])[0]
        return [lower_activation(ctx, op.attrs["act"], y, op.inputs[0].type.dtype)]
