"""Reference semantics of run-time comparisons, boolean logic, selection and floor
division, written from the definitions in compiler/ops/select.py."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref

ref("equal")(lambda a, b: np.equal(a, b))
ref("not_equal")(lambda a, b: np.not_equal(a, b))
ref("less")(lambda a, b: np.less(a, b))
ref("less_equal")(lambda a, b: np.less_equal(a, b))
ref("greater")(lambda a, b: np.greater(a, b))
ref("greater_equal")(lambda a, b: np.greater_equal(a, b))
ref("logical_and")(lambda a, b: np.logical_and(a, b))
ref("logical_or")(lambda a, b: np.logical_or(a, b))
ref("logical_not")(lambda a: np.logical_not(a))
ref("where")(lambda c, a, b: np.where(c, a, b))
ref("maximum")(lambda a, b: np.maximum(a, b))
ref("minimum")(lambda a, b: np.minimum(a, b))
ref("isnan")(lambda x: np.isnan(x))


@ref("mod")
def mod(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.mod(a, b)  # Python's %: the sign of the divisor
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a - b * np.floor(a / b)).astype(a.dtype)


@ref("floordiv")
def floordiv(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.floor_divide(a, b)  # exact integer floor division
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.floor(a / b).astype(a.dtype)


@ref("clip")
def clip(x, *, lo, hi):
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi, dtype=x.dtype))
    return np.asarray(y, dtype=x.dtype)
