"""Compile-time values that become tensors where a tensor is needed: list literals
(`[[1, 0, 0], [0, 1, 0]]`) and symbolic dims used as run-time scalars (`x / dim(x, 0)`).

Dtype rules: combined with a tensor, a literal or a dim takes that tensor's dtype, exactly
like a number does (a float in a literal combined with an integer tensor is an error). On
its own (`tensor([...])`), a literal is i64 when every item is an int and f32 when any is a
float, unless `dtype=` says otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, Value


def is_literal(value: Any) -> bool:
    """A (nested) list or tuple whose leaves are numbers or bools."""
    if not isinstance(value, list | tuple) or not value:
        return False
    return all(is_literal(v) if isinstance(v, list | tuple) else isinstance(v, int | float) for v in value)


def literal_array(b, value: list | tuple, dtype: DType | None, what: str) -> np.ndarray:
    """The array of a list literal; rectangular, of `dtype` or the literal's own."""
    shape: list[int] = []
    level: Any = value
    while isinstance(level, list | tuple):
        shape.append(len(level))
        level = level[0] if level else None
    flat: list[Any] = []

    def walk(v: Any, depth: int) -> None:
        if depth == len(shape):
            if isinstance(v, list | tuple):
                raise b.error(f"{what}: the literal is not rectangular (nested deeper in places)")
            flat.append(v)
            return
        if not isinstance(v, list | tuple) or len(v) != shape[depth]:
            raise b.error(f"{what}: the literal is not rectangular: rows of different lengths at depth {depth}",
                          "every row of a tensor literal has the same length")
        for item in v:
            walk(item, depth + 1)

    walk(value, 0)
    bools = all(isinstance(v, bool) for v in flat)
    floats = any(isinstance(v, float) for v in flat)
    if any(isinstance(v, bool) for v in flat) and not bools:
        raise b.type_error(f"{what}: a literal mixes true/false with numbers")
    if dtype is None:
        dtype = DType.bool if bools else DType.f32 if floats else DType.i64
    if bools != (dtype is DType.bool):
        raise b.type_error(f"{what}: cannot make a {dtype.value} tensor of {'true/false' if bools else 'numbers'}")
    if dtype is DType.bool:
        return np.asarray(flat, dtype=bool).reshape(shape)
    if dtype.is_int and floats:
        first = next(v for v in flat if isinstance(v, float))
        raise b.type_error(f"{what}: cannot combine the float {first:g} of a literal with {dtype.value}",
                           "write the literal's numbers as integers, or cast the tensor to a float")
    return np.asarray([b._scalar(v, dtype) for v in flat], dtype=dtype.numpy).reshape(shape)


def literal_tensor(b, value: list | tuple, dtype: DType | None, what: str) -> Value:
    return b.emit("constant", [], {"value": literal_array(b, value, dtype, what)})[0]


def dim_scalar(b, d: D.Dim, dtype: DType) -> Value:
    """The run-time value of dim `d` as a scalar tensor of `dtype`."""
    if isinstance(d, int):
        return b.constant(d, dtype)
    if not (dtype.is_int or dtype.is_float) or dtype is DType.bf16:
        raise b.type_error(f"the dim {d} cannot be combined with a {dtype.value} tensor")
    return b.emit("dim_value", [], {"dim": d, "dtype": dtype})[0]


def operand(b, value: Any, like: DType, fname: str) -> Value | Any:
    """`value` as a tensor of dtype `like` when it is a literal or a symbolic dim; else as given."""
    if isinstance(value, D.Sym):
        return dim_scalar(b, value, like)
    if is_literal(value):
        return literal_tensor(b, value, like, fname)
    return value


def tensor_value(elab, span, values: Any, dtype: DType | None) -> Value:
    """`tensor(values, dtype=)`: a list literal, a number or a dim (its run-time value) as a tensor."""
    from netc.compiler.values import describe
    from netc.dsl.errors import NetcTypeError

    b = elab.b
    b.begin_layer("tensor", span)
    if isinstance(values, Value):
        raise NetcTypeError(f"tensor() of a {describe(values)}: it is a tensor already", span,
                            ["cast(x, dtype) converts it"])
    if isinstance(values, bool):
        values = [values]
        array = literal_array(b, values, dtype, "tensor").reshape(())
        return b.emit("constant", [], {"value": array})[0]
    if isinstance(values, D.Sym | int):
        return dim_scalar(b, values, dtype or DType.i64)
    if isinstance(values, float):
        return b.constant(values, dtype or DType.f32)
    if is_literal(values):
        return literal_tensor(b, values, dtype, "tensor")
    raise NetcTypeError(f"tensor() expects a list of numbers, a number or a dim; got {describe(values)}", span)
