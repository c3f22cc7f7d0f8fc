"""Run-time comparison and selection: comparisons giving bool tensors, boolean logic,
`where`, elementwise `maximum`/`minimum`, floor `%` and `//`, `clip` and `isnan`.

Semantics (stated once, implemented by the lowering and, independently, by the reference):
- comparisons compare elementwise with broadcasting and give `bool`; both sides have one
  dtype (a number takes the tensor's dtype, as in arithmetic).
- `a % b` has the sign of `b` (floor semantics, Python's `%`): `a - b * floor(a / b)`.
  `a // b` is `floor(a / b)`. For integers both are exact; an integer divisor of 0 is an
  error at run time in onnxruntime and undefined here, so netc does not define it.
- `/` on integer tensors is refused (compile-time `7 / 2` is 3.5, ONNX `Div` truncates to 3):
  write `//` for floor division or cast to a float.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ir import DType, TensorType, Value
from netc.compiler.ops.elementwise import TwoOperands, check_same_dtype, promote_scalars
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import broadcast_types, numel

# onnxruntime's CPU kernels for Less/Greater/... and Max/Min cover these; narrower integers
# are widened to i32 in the lowering (comparison and max/min are exact under widening).
_WIDE = (DType.f16, DType.f32, DType.f64, DType.i32, DType.i64)


def widen(ctx, op, inputs: list[str]) -> list[str]:
    """Inputs of an 8-bit integer dtype as i32 (onnxruntime has no 8-bit kernels for them)."""
    dtype = op.inputs[0].type.dtype
    if dtype in _WIDE or dtype is DType.bool:
        return inputs
    return [ctx.node("Cast", [i], to=DType.i32.onnx)[0] for i in inputs]


class _Compare(TwoOperands):
    onnx_op = ""
    negate = False
    allows_bool = False

    def infer(self, attrs, inputs, b):
        x, y = inputs
        check_same_dtype(b, self.name, x, y)
        if x.dtype is DType.bool and not self.allows_bool:
            raise b.type_error(f"{self.name} orders numbers; got {x}", "compare bools with == or !=")
        if x.dtype is DType.bf16:
            raise b.type_error(f"{self.name}: bf16 tensors cannot be compared; cast(x, f32) first")
        return [TensorType(DType.bool, broadcast_types(b, self.name, x, y))]

    def lower(self, ctx, op, inputs):
        y = ctx.node(self.onnx_op, widen(ctx, op, inputs))
        return ctx.node("Not", y) if self.negate else y


_CMP_CASES = (
    Case("OP(x, y)", {"x": "{f}[3, 4]", "y": "{f}[3, 4]"}),
    Case("x SYM y", {"x": "{f}[N, 1, 5]", "y": "{f}[3, 1]"}, note="symbolic broadcast"),
    Case("x SYM 0.25", {"x": "{f}[N, 4]"}, note="with a number"),
    Case("x SYM y", {"x": "i64[N, 6]", "y": "i64[6]"}, int_high=3, note="integers, many ties"),
    Case("OP(x, y)", {"x": "i32[4, 5]", "y": "i32[5]"}, int_high=3),
    Case("OP(x, y)", {"x": "u8[4, 5]", "y": "u8[1]"}, int_high=3, note="8-bit integers"),
    Case("OP(x, x)", {"x": "{f}[3]"}, note="equal operands"),
)


def _spelled(cases: tuple[Case, ...], name: str, sym: str) -> tuple[Case, ...]:
    """`cases` for one op: OP spelled as its name, SYM as its operator."""
    return tuple(Case(c.expr.replace("OP", name).replace("SYM", sym), c.inputs, c.int_high, c.note) for c in cases)


@register
class Equal(_Compare):
    name = "equal"
    onnx_op = "Equal"
    allows_bool = True
    doc = "a == b elementwise with broadcasting: a bool tensor"
    cases = (*_spelled(_CMP_CASES, "equal", "=="),
             Case("(x > 0) == (y > 0)", {"x": "{f}[2, 3]", "y": "{f}[3]"}, note="bools"))


@register
class NotEqual(_Compare):
    name = "not_equal"
    onnx_op = "Equal"
    negate = True
    allows_bool = True
    doc = "a != b elementwise with broadcasting: a bool tensor"
    cases = _spelled(_CMP_CASES, "not_equal", "!=")


@register
class Less(_Compare):
    name = "less"
    onnx_op = "Less"
    doc = "a < b elementwise with broadcasting: a bool tensor"
    cases = _spelled(_CMP_CASES, "less", "<")


@register
class LessEqual(_Compare):
    name = "less_equal"
    onnx_op = "LessOrEqual"
    doc = "a <= b elementwise with broadcasting: a bool tensor"
    cases = _spelled(_CMP_CASES, "less_equal", "<=")


@register
class Greater(_Compare):
    name = "greater"
    onnx_op = "Greater"
    doc = "a > b elementwise with broadcasting: a bool tensor"
    cases = _spelled(_CMP_CASES, "greater", ">")


@register
class GreaterEqual(_Compare):
    name = "greater_equal"
    onnx_op = "GreaterOrEqual"
    doc = "a >= b elementwise with broadcasting: a bool tensor"
    cases = _spelled(_CMP_CASES, "greater_equal", ">=")


# ---------------------------------------------------------------------- boolean logic


def _check_bool(b, name: str, t: TensorType) -> None:
    if t.dtype is not DType.bool:
        raise b.type_error(f"{name} needs bool tensors; got {t}",
                           "compare to make one (x > 0), or cast(x, bool) to test for non-zero")


class _Logic(TwoOperands):
    onnx_op = ""

    def build(self, b, x, y):  # true/false rather than numbers
        return b.emit(self.name, _bool_operands(b, self.name, x, y), {})[0]

    def infer(self, attrs, inputs, b):
        x, y = inputs
        _check_bool(b, self.name, x)
        _check_bool(b, self.name, y)
        return [TensorType(DType.bool, broadcast_types(b, self.name, x, y))]

    def lower(self, ctx, op, inputs):
        return ctx.node(self.onnx_op, inputs)


def _bool_operands(b, name: str, x, y) -> list:
    if not isinstance(x, Value) and not isinstance(y, Value):
        raise b.type_error(f"{name} needs at least one tensor operand")
    out = []
    for v in (x, y):
        if isinstance(v, bool):
            out.append(b.emit("constant", [], {"value": np.asarray(v)})[0])
        elif isinstance(v, Value):
            out.append(v)
        else:
            raise b.type_error(f"{name}: expected a bool tensor or true/false; got {type(v).__name__}")
    return out


_LOGIC_CASES = (
    Case("OP(x > 0, y > 0)", {"x": "{f}[3, 4]", "y": "{f}[3, 4]"}),
    Case("(x > 0) SYM (y < 0.5)", {"x": "{f}[N, 1, 3]", "y": "{f}[2, 1]"}, note="broadcast"),
    Case("OP(m, true)", {"m": "bool[N, 3]"}),
    Case("OP(m, k)", {"m": "bool[4, 3]", "k": "bool[3]"}),
)


@register
class And(_Logic):
    name = "logical_and"
    onnx_op = "And"
    doc = "a and b on bool tensors, elementwise with broadcasting"
    cases = _spelled(_LOGIC_CASES, "logical_and", "and")


@register
class Or(_Logic):
    name = "logical_or"
    onnx_op = "Or"
    doc = "a or b on bool tensors, elementwise with broadcasting"
    cases = _spelled(_LOGIC_CASES, "logical_or", "or")


@register
class Not(OpDef):
    name = "logical_not"
    doc = "not a on a bool tensor"
    signature = (Arg("x", "tensor"),)
    step_polymorphic = True
    cases = (Case("logical_not(m)", {"m": "bool[3, 4]"}), Case("not (x > 0)", {"x": "{f}[N, 3]"}),
             Case("not (x > 0) and m", {"x": "{f}[N, 3]", "m": "bool[N, 3]"}, note="precedence"))

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        _check_bool(b, self.name, x)
        return [x]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        return ctx.node("Not", inputs)


# ---------------------------------------------------------------------- selection


@register
class Where(OpDef):
    name = "where"
    doc = "where(cond, a, b): a where cond is true, else b; cond is bool, a and b one dtype; all broadcast"
    signature = (Arg("cond", "tensor"), Arg("x", "any"), Arg("y", "any"))
    step_polymorphic = True
    cases = (
        Case("where(x > 0, x, y)", {"x": "{f}[3, 4]", "y": "{f}[3, 4]"}),
        Case("where(m, x, 0)", {"m": "bool[N, 1, 4]", "x": "{f}[3, 4]"}, note="3-way broadcast, number"),
        Case("where(x > y, 1.5, y)", {"x": "{f}[N, 5]", "y": "{f}[5]"}),
        Case("where(m, i, j)", {"m": "bool[N, 3]", "i": "i64[N, 3]", "j": "i64[1]"}),
        Case("where(m, k, false)", {"m": "bool[4]", "k": "bool[4]"}, note="bool values"),
        Case("where(i > 1, i, -i)", {"i": "i8[N, 4]"}, note="8-bit integers"),
    )

    def build(self, b, cond, x, y):
        if not isinstance(x, Value) and not isinstance(y, Value):
            raise b.type_error("where: at least one branch must be a tensor (its dtype is the result's)")
        ref = x if isinstance(x, Value) else y
        branches = []
        for v in (x, y):
            if isinstance(v, Value):
                branches.append(v)
            elif isinstance(v, bool):
                if ref.type.dtype is not DType.bool:
                    raise b.type_error(f"where: cannot combine {str(v).lower()} with {ref.type}")
                branches.append(b.emit("constant", [], {"value": np.asarray(v)})[0])
            else:
                branches.append(promote_scalars(b, "where", ref, v)[1])
        return b.emit("where", [cond, *branches], {})[0]

    def infer(self, attrs, inputs, b):
        cond, x, y = inputs
        if cond.dtype is not DType.bool:
            raise b.type_error(f"where: the condition must be a bool tensor; got {cond}",
                               "compare to make one: where(x > 0, a, b)")
        if x.dtype != y.dtype:
            raise b.type_error(f"where: the branches have different dtypes: {x} and {y}",
                               "convert one with cast(x, dtype)")
        return [TensorType(x.dtype, broadcast_types(b, "where", cond, x, y))]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        dtype = op.outputs[0].type.dtype
        if dtype not in (DType.bool, DType.i8):
            return ctx.node("Where", inputs)
        # onnxruntime's Where has no bool or int8 kernel: select in i32 and convert back.
        cond, x, y = inputs
        wide = [ctx.node("Cast", [v], to=DType.i32.onnx)[0] for v in (x, y)]
        return ctx.node("Cast", ctx.node("Where", [cond, *wide]), to=dtype.onnx)


def _numeric_pair(b, name: str, x: TensorType, y: TensorType, hints: tuple[str, ...] = ()) -> TensorType:
    """The result of an elementwise op on two numeric (not bf16) tensors of one dtype."""
    check_same_dtype(b, name, x, y)
    if not (x.dtype.is_float or x.dtype.is_int) or x.dtype is DType.bf16:
        raise b.type_error(f"{name} needs numeric tensors; got {x}", *hints)
    return TensorType(x.dtype, broadcast_types(b, name, x, y))


class _MinMax(TwoOperands):
    onnx_op = ""

    def infer(self, attrs, inputs, b):
        return [_numeric_pair(b, self.name, *inputs)]

    def lower(self, ctx, op, inputs):
        y = ctx.node(self.onnx_op, widen(ctx, op, inputs))
        if op.inputs[0].type.dtype not in _WIDE:
            y = ctx.node("Cast", y, to=op.inputs[0].type.dtype.onnx)
        return y


def _minmax_cases(name: str) -> tuple[Case, ...]:
    return (
        Case(f"{name}(x, y)", {"x": "{f}[3, 4]", "y": "{f}[3, 4]"}),
        Case(f"{name}(x, y)", {"x": "{f}[N, 1, 4]", "y": "{f}[3, 1]"}, note="broadcast"),
        Case(f"{name}(x, 0)", {"x": "{f}[N, 5]"}, note="with a number"),
        Case(f"{name}(i, j)", {"i": "i64[4, 3]", "j": "i64[3]"}),
        Case(f"{name}(i, 2)", {"i": "u8[4, 3]"}),
    )


@register
class Maximum(_MinMax):
    name = "maximum"
    onnx_op = "Max"
    doc = "elementwise larger of a and b, with broadcasting (max(x, axis=) reduces instead)"
    cases = _minmax_cases("maximum")


@register
class Minimum(_MinMax):
    name = "minimum"
    onnx_op = "Min"
    doc = "elementwise smaller of a and b, with broadcasting (min(x, axis=) reduces instead)"
    cases = _minmax_cases("minimum")


# ---------------------------------------------------------------------- floor % and //


class _FloorOp(TwoOperands):
    def infer(self, attrs, inputs, b):
        return [_numeric_pair(b, self.name, *inputs, hints=("cast(x, dtype) to compute with it",))]


@register
class Mod(_FloorOp):
    name = "mod"
    doc = "a % b with the sign of b (floor semantics): a - b * floor(a / b)"
    cases = (
        Case("x % 0.7", {"x": "{f}[3, 4]"}),
        Case("mod(x, y * y + 0.5)", {"x": "{f}[N, 4]", "y": "{f}[4]"}),
        Case("x % -0.6", {"x": "{f}[5]"}, note="negative divisor"),
        Case("(i - 2) % (j + 1)", {"i": "i64[N, 6]", "j": "i64[6]"}, int_high=5, note="negative dividends"),
        Case("i % -3", {"i": "i32[4, 5]"}, int_high=9, note="negative divisor"),
        Case("i % 3", {"i": "u8[7]"}, int_high=9),
    )

    def lower(self, ctx, op, inputs):
        dtype = op.inputs[0].type.dtype
        if dtype.is_int:
            return ctx.node("Mod", inputs, fmod=0)  # integer Mod with fmod=0: the sign of the divisor
        x, y = inputs
        q = ctx.node("Floor", ctx.node("Div", [x, y]))[0]
        return ctx.node("Sub", [x, ctx.node("Mul", [y, q])[0]])


@register
class FloorDiv(_FloorOp):
    name = "floordiv"
    doc = "a // b: floor(a / b), rounding toward minus infinity"
    cases = (
        Case("x // 0.7", {"x": "{f}[3, 4]"}),
        Case("floordiv(x, y * y + 0.5)", {"x": "{f}[N, 4]", "y": "{f}[4]"}),
        Case("(i - 2) // (j + 1)", {"i": "i64[N, 6]", "j": "i64[6]"}, int_high=5, note="negative dividends"),
        Case("i // -3", {"i": "i32[4, 5]"}, int_high=9, note="negative divisor"),
        Case("(i - 4) // (2 - j)", {"i": "i64[8]", "j": "i64[8]"}, int_high=2, note="mixed signs"),
        Case("i // 4", {"i": "u8[7]"}, int_high=19),
    )

    def lower(self, ctx, op, inputs):
        dtype = op.inputs[0].type.dtype
        x, y = inputs
        if dtype.is_float:
            return ctx.node("Floor", ctx.node("Div", [x, y]))
        if dtype is DType.u8:  # no negatives: truncation is floor
            return ctx.node("Div", [x, y])
        # Div truncates toward zero; floor is one less where the remainder is non-zero and
        # its sign differs from the divisor's.
        q = ctx.node("Div", [x, y])[0]
        r = ctx.node("Sub", [x, ctx.node("Mul", [q, y])[0]])[0]
        zero = ctx.const(np.zeros((), dtype=dtype.numpy), "zero")
        nonzero = ctx.node("Not", ctx.node("Equal", [r, zero]))[0]
        signs = ctx.node("Xor", [ctx.node("Less", [r, zero])[0], ctx.node("Less", [y, zero])[0]])[0]
        fix = ctx.node("Cast", ctx.node("And", [nonzero, signs]), to=dtype.onnx)[0]
        return ctx.node("Sub", [q, fix])


# ---------------------------------------------------------------------- clip, isnan


@register
class Clip(OpDef):
    name = "clip"
    doc = "clip(x, lo, hi): every element limited to [lo, hi]; none leaves that side open"
    signature = (Arg("x", "tensor"), Arg("lo", "any", None), Arg("hi", "any", None))
    step_polymorphic = True
    cases = (
        Case("clip(x, -0.5, 0.5)", {"x": "{f}[3, 4]"}),
        Case("x -> clip(lo=0)", {"x": "{f}[N, 4]"}),
        Case("clip(x, hi=0.25)", {"x": "{f}[N, 2, 3]"}),
        Case("clip(i, 1, 3)", {"i": "i64[N, 5]"}),
        Case("clip(i, 2, 2)", {"i": "i32[6]"}, note="lo = hi"),
    )

    def build(self, b, x, lo, hi):
        bounds = {}
        for key, v in (("lo", lo), ("hi", hi)):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise b.type_error(f"clip: '{key}' expects a number or none; got {v!r}")
            bounds[key] = b._scalar(v, x.type.dtype) if x.type.dtype.is_float or x.type.dtype.is_int else v
        if "lo" in bounds and "hi" in bounds and bounds["lo"] > bounds["hi"]:
            raise b.error(f"clip: lo {lo} is above hi {hi}")
        return b.emit(self.name, [x], {"lo": None if lo is None else lo, "hi": None if hi is None else hi})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        if not (x.dtype.is_float or x.dtype.is_int) or x.dtype is DType.bf16:
            raise b.type_error(f"clip needs a numeric tensor; got {x}")
        return [x]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        dtype = op.inputs[0].type.dtype.numpy
        bounds = ["" if op.attrs[k] is None else ctx.const(np.asarray(op.attrs[k], dtype=dtype), k)
                  for k in ("lo", "hi")]
        while bounds and bounds[-1] == "":
            bounds.pop()
        return ctx.node("Clip", [inputs[0], *bounds])


@register
class IsNan(OpDef):
    name = "isnan"
    doc = "whether each element is NaN: a bool tensor"
    signature = (Arg("x", "tensor"),)
    step_polymorphic = True
    cases = (Case("isnan(x)", {"x": "{f}[3, 4]"}), Case("isnan(log(x))", {"x": "{f}[N, 5]"}, note="NaNs"))

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        if not x.dtype.is_float:
            raise b.type_error(f"isnan needs a floating-point tensor; got {x}", "integers are never NaN")
        return [TensorType(DType.bool, x.shape)]

    def flops(self, op):
        return numel(op.outputs[0].type.shape)

    def lower(self, ctx, op, inputs):
        return ctx.node("IsNaN", inputs)
