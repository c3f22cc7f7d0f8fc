"""Elementwise arithmetic with NumPy broadcasting, and matrix product (`@`)."""

from __future__ import annotations

from typing import Any

from netc.compiler import dims as D
from netc.compiler.ir import DType, TensorType, Value
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import broadcast_shapes, broadcast_types, numel

_MATMUL_DTYPES = (DType.f16, DType.bf16, DType.f32, DType.f64, DType.i32, DType.i64)


class TwoOperands(OpDef):
    """Base of the elementwise ops of two operands with broadcasting: a number operand becomes
    a constant of the tensor's dtype; one FLOP per output element."""

    signature = (Arg("x", "any"), Arg("y", "any"))
    step_polymorphic = True

    def build(self, b, x, y):
        return b.emit(self.name, promote_scalars(b, self.name, x, y), {})[0]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)


class _Binary(TwoOperands):
    onnx_op = ""
    float_only = False

    def infer(self, attrs, inputs, b):
        x, y = inputs
        check_same_dtype(b, self.name, x, y)
        if self.float_only and not x.dtype.is_float:
            raise b.type_error(f"{self.name} needs floating-point tensors; got {x}")
        if not (x.dtype.is_float or x.dtype.is_int):
            raise b.type_error(f"{self.name} needs numeric tensors; got {x}", "cast(x, dtype) to compute with it")
        if self.name == "div" and x.dtype.is_int:  # ONNX Div truncates; compile-time 7 / 2 is 3.5
            raise b.type_error(f"'/' of integer tensors is not defined ({x} and {y}): it would truncate at run "
                               "time but divides exactly at compile time", "use // to round down, or cast(x, f32)")
        return [TensorType(x.dtype, broadcast_types(b, self.name, x, y))]

    def lower(self, ctx, op, inputs):
        return ctx.node(self.onnx_op, inputs)


def check_same_dtype(b, name: str, x: TensorType, y: TensorType) -> None:
    if x.dtype != y.dtype:
        raise b.type_error(f"{name}: dtypes differ: {x} and {y}", "convert one side with cast(x, dtype)")


def promote_scalars(b, fname: str, x: Any, y: Any) -> list[Value]:
    """Tensor-with-number arithmetic: the number becomes a constant of the tensor's dtype."""
    ref = x if isinstance(x, Value) else y
    if not isinstance(ref, Value):
        raise b.type_error(f"{fname} needs at least one tensor operand")
    from netc.compiler.operands import operand  # list literals and symbolic dims as tensors

    out = []
    for v in (x, y):
        v = operand(b, v, ref.type.dtype, fname)
        if isinstance(v, Value):
            out.append(v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            if ref.type.dtype.is_int and isinstance(v, float):
                raise b.type_error(f"{fname}: cannot combine float {v:g} with {ref.type}")
            out.append(b.constant(v, ref.type.dtype))
        else:
            raise b.type_error(f"{fname}: expected a tensor or a number; got {type(v).__name__}")
    return out


_BINARY_CASES = (
    Case("OP(x, y)", {"x": "{f}[3, 4]", "y": "{f}[3, 4]"}),
    Case("OP(x, y)", {"x": "{f}[2, 3, 4]", "y": "{f}[4]"}, note="broadcast"),
    Case("OP(x, y)", {"x": "{f}[N, 1, 5]", "y": "{f}[3, 1]"}, note="symbolic broadcast"),
)


def _cases(op: str, cases=_BINARY_CASES) -> tuple[Case, ...]:
    return tuple(Case(c.expr.replace("OP", op), c.inputs, c.int_high, c.note) for c in cases)


@register
class Add(_Binary):
    name = "add"
    onnx_op = "Add"
    doc = "a + b, elementwise with broadcasting"
    cases = (*_cases("add"), Case("x + 2.5 - y", {"x": "{f}[3, 4]", "y": "{f}[4]"}))


@register
class Sub(_Binary):
    name = "sub"
    onnx_op = "Sub"
    doc = "a - b"
    cases = (*_cases("sub"), Case("1 - x", {"x": "{f}[3, 4]"}))


@register
class Mul(_Binary):
    name = "mul"
    onnx_op = "Mul"
    doc = "a * b"
    cases = (*_cases("mul"), Case("x * 0.5 * y", {"x": "{f}[2, 4]", "y": "{f}[2, 1]"}))


@register
class Div(_Binary):
    name = "div"
    onnx_op = "Div"
    doc = "a / b"
    cases = (Case("x / (y * y + 1)", {"x": "{f}[3, 4]", "y": "{f}[4]"}), Case("div(x, 3)", {"x": "{f}[5]"}))


@register
class Pow(_Binary):
    name = "pow"
    onnx_op = "Pow"
    doc = "a ** b"
    float_only = True
    cases = (Case("x * x ** 2", {"x": "{f}[3, 4]"}), Case("pow(x * x + 1, y)", {"x": "{f}[3, 4]", "y": "{f}[4]"}))


@register
class MatMul(OpDef):
    name = "matmul"
    doc = "a @ b: matrix product, batched over leading axes (NumPy matmul)"
    signature = (Arg("x", "tensor"), Arg("y", "tensor"))
    step_polymorphic = True
    cases = (
        Case("x @ y", {"x": "{f}[3, 4]", "y": "{f}[4, 5]"}),
        Case("x @ y", {"x": "{f}[2, N, 3, 4]", "y": "{f}[4, 2]"}, note="batched"),
        Case("matmul(x, y)", {"x": "{f}[4]", "y": "{f}[4, 3]"}, note="vector"),
    )

    def infer(self, attrs, inputs, b):
        x, y = inputs
        if x.dtype != y.dtype:
            raise b.type_error(f"matmul: dtypes differ: {x} and {y}")
        if x.dtype not in _MATMUL_DTYPES:  # ONNX MatMul has no 8-bit or bool variant
            raise b.type_error(f"matmul needs f16, f32, f64, i32 or i64 tensors; got {x}",
                               "cast(x, dtype) to compute with it")
        if x.rank == 0 or y.rank == 0:
            raise b.error("matmul needs tensors of rank >= 1; use * for scalars")
        xs = list(x.shape) if x.rank > 1 else [1, *x.shape]
        ys = list(y.shape) if y.rank > 1 else [*y.shape, 1]
        if xs[-1] != ys[-2]:
            raise b.error(f"matmul: inner dims differ: {x} @ {y} ({xs[-1]} vs {ys[-2]})")
        batch = broadcast_shapes(xs[:-2], ys[:-2])
        if batch is None:
            raise b.error(f"matmul: batch dims of {x} and {y} do not broadcast")
        shape = [*batch, xs[-2], ys[-1]]
        if x.rank == 1:
            shape.pop(-2)
        if y.rank == 1:
            shape.pop(-1)
        return [TensorType(x.dtype, tuple(shape))]

    def hoistable(self, op, varying):
        # A vector operand is not a batch of matrices: only matrices gain a leading axis.
        if any(v.type.rank < 2 for v, var in zip(op.inputs, varying) if var):
            return False
        return super().hoistable(op, varying)

    def flops(self, op):
        x = op.inputs[0].type
        k = x.shape[-1]
        return D.mul(2, D.mul(numel(op.outputs[0].type.shape), k))

    def lower(self, ctx, op, inputs):
        return ctx.node("MatMul", inputs)


class _Unary(OpDef):
    signature = (Arg("x", "tensor"),)
    onnx_op = ""
    float_only = True
    numeric_only = True  # whether bool tensors are refused
    unsigned = True  # whether the ONNX op takes u8
    step_polymorphic = True

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        if self.float_only and not x.dtype.is_float:
            raise b.type_error(f"{self.name} needs a floating-point tensor; got {x}")
        numeric = x.dtype.is_float or x.dtype.is_int
        if (self.numeric_only and not numeric) or (x.dtype is DType.u8 and not self.unsigned):
            raise b.type_error(f"{self.name} needs a {'' if self.unsigned else 'signed '}numeric tensor; got {x}",
                               "cast(x, dtype) to compute with it")
        return [x]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        return ctx.node(self.onnx_op, inputs)


def _unary_cases(op: str) -> tuple[Case, ...]:
    return (Case(f"{op}(x)", {"x": "{f}[3, 4]"}), Case(f"x -> {op}", {"x": "{f}[N, 2, 5]"}))


@register
class Neg(_Unary):
    name = "neg"
    onnx_op = "Neg"
    doc = "-x"
    float_only = False
    unsigned = False
    cases = (Case("-x", {"x": "{f}[3, 4]"}), Case("neg(x)", {"x": "{f}[N]"}))


@register
class Exp(_Unary):
    name = "exp"
    onnx_op = "Exp"
    doc = "e ** x"
    cases = _unary_cases("exp")


@register
class Log(_Unary):
    name = "log"
    onnx_op = "Log"
    doc = "natural logarithm"
    cases = (Case("log(x * x + 1)", {"x": "{f}[3, 4]"}),)


@register
class Sqrt(_Unary):
    name = "sqrt"
    onnx_op = "Sqrt"
    doc = "square root"
    cases = (Case("sqrt(x * x)", {"x": "{f}[3, 4]"}),)


@register
class Abs(_Unary):
    name = "abs"
    onnx_op = "Abs"
    doc = "absolute value"
    float_only = False
    cases = _unary_cases("abs")
