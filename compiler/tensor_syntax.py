"""Syntax that becomes run-time ops when a tensor is involved: comparisons (`x > 0`),
boolean logic (`m and k`, `not m`) and tensor indices in subscripts (`x[:, idx]`).
On compile-time numbers the elaborator folds these itself."""

from __future__ import annotations

from typing import Any

import numpy as np

from netc.compiler.ir import DType, Value
from netc.compiler.ops import REGISTRY
from netc.compiler.values import describe
from netc.dsl import ast
from netc.dsl.errors import NetcTypeError, Span

COMPARE_OPS = {"==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater",
               ">=": "greater_equal"}
LOGIC_OPS = {"and": "logical_and", "or": "logical_or"}


def compare(elab, op: str, left: Any, right: Any, span: Span) -> Value:
    kind = COMPARE_OPS[op]
    elab.b.begin_layer(kind, span)
    if isinstance(left, bool) or isinstance(right, bool):  # m == true: a bool constant
        if op not in ("==", "!="):
            raise NetcTypeError(f"'{op}' orders numbers; got {describe(left)} and {describe(right)}", span)
        left, right = (elab.b.emit("constant", [], {"value": np.asarray(v)})[0] if isinstance(v, bool) else v
                       for v in (left, right))
    return REGISTRY[kind].build(elab.b, left, right)


def logic(elab, op: str, left: Any, right: Any, span: Span) -> Value:
    kind = LOGIC_OPS[op]
    elab.b.begin_layer(kind, span)
    for v in (left, right):
        if not isinstance(v, Value | bool):
            raise NetcTypeError(f"'{op}' applies to bool tensors and true/false; got {describe(v)}", span)
    return REGISTRY[kind].build(elab.b, left, right)


def tensor_index(elab, x: Value, items: list[Any], e: ast.Index) -> Value:
    """`x[..., idx, ...]` with one integer tensor `idx`: the other items slice or pick as usual,
    then `gather` takes the rows `idx` names on that axis (its dims replace the axis)."""
    positions = [k for k, i in enumerate(items) if isinstance(i, Value)]
    if len(positions) > 1:
        raise NetcTypeError("at most one index may be a tensor", e.items[positions[1]].span,
                            ["index one axis at a time: x[i][:, j], or use take_along(x, idx, axis)"])
    (k,) = positions
    idx = items[k]
    if idx.type.dtype not in (DType.i32, DType.i64):
        hint = ("to keep the elements where a mask is true, use compress(x, mask, axis) or where(mask, x, 0)"
                if idx.type.dtype is DType.bool else "convert with cast(idx, i64)")
        raise NetcTypeError(f"an index tensor must hold integers (i64 or i32); got {idx.type}", e.items[k].span,
                            [hint])
    rest = [slice(None) if isinstance(i, Value) else i for i in items]
    y = x
    if any(not (isinstance(i, slice) and i == slice(None)) for i in rest):
        y = elab.tensor_op("index", [x], e.span,
                           {"items": tuple(i if isinstance(i, int) else (i.start, i.stop, i.step) for i in rest)})
    axis = sum(1 for i in rest[:k] if isinstance(i, slice))
    elab.b.begin_layer("gather", e.span)
    return REGISTRY["gather"].build(elab.b, x=y, idx=idx, axis=axis)
