"""Compile-time functions visible in every `.net` file: ranges, shape queries, tensor
fillers and initialiser constructors. None of them can reach the host."""

from __future__ import annotations

import math
from typing import Any

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, Value
from netc.compiler.operands import tensor_value
from netc.compiler.ops import REGISTRY
from netc.compiler.ops.registry import Arg
from netc.compiler.values import Builtin, Intrinsic, count_text, describe
from netc.dsl.errors import NetcLimitError, NetcTypeError, Span


def _range(elab, span: Span, start: int, stop: int | None, step: int) -> list[int]:
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise NetcTypeError("range() step must not be zero", span)
    # Counted with Python ints: len() of a range beyond a C ssize_t raises OverflowError.
    n = max(0, (stop - start + step + (-1 if step > 0 else 1)) // step)
    limit = elab.limits.max_list_items
    if n > limit:
        raise NetcLimitError(f"range() of {count_text(n)} items is over the limit of {limit}", span)
    elab.work.items_touched(n, "range()", span)
    return list(range(start, stop, step))


def _enumerate(elab, span: Span, items: Any, start: int) -> list[tuple[int, Any]]:
    items = _sequence(items, span, "enumerate")
    elab.work.items_touched(len(items), "enumerate()", span)
    return [(i + start, v) for i, v in enumerate(items)]


def _zip(elab, span: Span, lists: tuple) -> list[tuple]:
    sequences = [_sequence(x, span, "zip") for x in lists]
    elab.work.items_touched(min(map(len, sequences), default=0) * max(len(sequences), 1), "zip()", span)
    return [tuple(t) for t in zip(*sequences)]


def _len(elab, span: Span, items: Any) -> int:
    if isinstance(items, Value):
        raise NetcTypeError("len() of a tensor; use dim(x, axis)", span)
    return len(_sequence(items, span, "len"))


def _sequence(items: Any, span: Span, fname: str) -> list | tuple | str:
    if not isinstance(items, list | tuple | str):
        raise NetcTypeError(f"{fname}() expects a list; got {describe(items)}", span)
    return items


def _dim(elab, span: Span, x: Value, axis: int) -> D.Dim:
    elab.b.span = span
    return x.type.shape[elab.b.axis(axis, x.type.rank)]


def _channels(elab, span: Span, x: Value) -> D.Dim:
    if x.type.rank < 2:
        raise NetcTypeError(f"channels() needs a tensor of rank >= 2 (axis 1 is the channel axis); got {x.type}",
                            span)
    return x.type.shape[1]


def _rank(elab, span: Span, x: Value) -> int:
    return x.type.rank


def _shape(elab, span: Span, x: Value) -> tuple:
    return tuple(x.type.shape)


def _minmax(pick):
    def fn(elab, span: Span, values: tuple, axis: Any, keepdims: Any) -> Any:
        if any(isinstance(v, Value) for v in values):
            return _reduce_tensor(elab, span, pick.__name__, values, axis, keepdims)
        if axis is not None or keepdims is not None:
            raise NetcTypeError(f"{pick.__name__}(): axis= and keepdims= apply to a tensor", span)
        items = list(values[0]) if len(values) == 1 and isinstance(values[0], list | tuple) else list(values)
        elab.work.items_touched(len(items), f"{pick.__name__}()", span)
        if not items or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
            raise NetcTypeError(f"{pick.__name__}() expects numbers", span)
        return pick(items)
    return fn


def _reduce_tensor(elab, span: Span, name: str, values: tuple, axis: Any, keepdims: Any) -> Value:
    """`max(x, axis=...)` of a tensor is the reduction op of the same name."""
    if sum(isinstance(v, Value) for v in values) > 1 or not isinstance(values[0], Value):
        raise NetcTypeError(f"{name}() of tensors reduces one tensor over axes; got "
                            + ", ".join(describe(v) for v in values), span,
                            [f"signature: {name}(x, axis=none, keepdims=false)"])
    kwargs = {k: (v, span) for k, v in (("axis", axis), ("keepdims", keepdims)) if v is not None}
    return elab.call(Builtin(REGISTRY[name]), [(v, span) for v in values], kwargs, span)


def _fill(value: float):
    def fn(elab, span: Span, shape: tuple, dtype: DType) -> Value:
        for d in shape:
            if isinstance(d, int) and d <= 0:
                raise NetcTypeError(f"dimensions must be positive; got {d}", span)
        elab.b.begin_layer("fill", span)
        return elab.b.emit("fill", [], {"shape": tuple(shape), "value": value, "dtype": dtype})[0]
    return fn


def _init(scheme: str, *names: str):
    def fn(elab, span: Span, **args: float) -> Init:
        return Init(scheme, tuple((k, float(v)) for k, v in args.items() if k in names))
    return fn


def _to_int(elab, span: Span, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise NetcTypeError(f"int() expects a number; got {describe(x)}", span)
    if isinstance(x, float) and not math.isfinite(x):
        raise NetcTypeError(f"int() of {describe(x)}: only a finite number has an integer value", span)
    return int(x)


def _to_float(elab, span: Span, x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise NetcTypeError(f"float() expects a number; got {describe(x)}", span)
    try:
        return float(x)
    except OverflowError:
        raise NetcTypeError(f"float() of {describe(x)}: beyond float range (about ±1.8e308)", span) from None


_MINMAX_SIG = (Arg("values", "any", variadic=True), Arg("axis", "any", None), Arg("keepdims", "any", None))
_FILL_SIG = (Arg("shape", "dim", variadic=True), Arg("dtype", "dtype", DType.f32))

INTRINSICS: dict[str, Any] = {
    i.name: i
    for i in [
        Intrinsic("range", (Arg("start", "int"), Arg("stop", "int", None), Arg("step", "int", 1)), _range,
                  "range(stop) or range(start, stop, step): a list of integers"),
        Intrinsic("enumerate", (Arg("items", "any"), Arg("start", "int", 0)), _enumerate,
                  "pairs (index, item)"),
        Intrinsic("zip", (Arg("lists", "any", variadic=True),), _zip, "tuples of corresponding items"),
        Intrinsic("len", (Arg("items", "any"),), _len, "length of a list"),
        Intrinsic("dim", (Arg("x", "tensor"), Arg("axis", "int")), _dim, "size of one axis (int or symbolic)"),
        Intrinsic("channels", (Arg("x", "tensor"),), _channels, "size of axis 1"),
        Intrinsic("rank", (Arg("x", "tensor"),), _rank, "number of axes"),
        Intrinsic("shape", (Arg("x", "tensor"),), _shape, "tuple of all dims"),
        Intrinsic("min", _MINMAX_SIG, _minmax(min), "smallest number; min(x, axis, keepdims) reduces a tensor"),
        Intrinsic("max", _MINMAX_SIG, _minmax(max), "largest number; max(x, axis, keepdims) reduces a tensor"),
        Intrinsic("int", (Arg("x", "any"),), _to_int, "truncate to an integer"),
        Intrinsic("float", (Arg("x", "any"),), _to_float, "a float"),
        Intrinsic("tensor", (Arg("values", "any"), Arg("dtype", "dtype", None)), tensor_value,
                  "a tensor from a list literal, a number or a dim (ints: i64, any float: f32)"),
        Intrinsic("zeros", _FILL_SIG, _fill(0.0), "a tensor of zeros; also an initialiser"),
        Intrinsic("ones", _FILL_SIG, _fill(1.0), "a tensor of ones; also an initialiser"),
        Intrinsic("normal", (Arg("std", "float", 0.01), Arg("mean", "float", 0.0)),
                  _init("normal", "std", "mean"), "initialiser: normal(std, mean)"),
        Intrinsic("uniform", (Arg("low", "float", -0.05), Arg("high", "float", 0.05)),
                  _init("uniform", "low", "high"), "initialiser: uniform(low, high)"),
        Intrinsic("constant", (Arg("value", "float"),), _init("constant", "value"),
                  "initialiser: every element = value"),
        Intrinsic("orthogonal", (Arg("gain", "float", 1.0),), _init("orthogonal", "gain"),
                  "initialiser: gain * an orthogonal matrix per square block (recurrent weights)"),
    ]
}
for _scheme in ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal"):
    INTRINSICS[_scheme] = Init(_scheme)
INTRINSICS["glorot"] = Init("glorot_uniform")
INTRINSICS["he"] = Init("he_normal")

from netc.compiler.recurrence import RECURRENCE  # noqa: E402  (recur, generate, recurse)

INTRINSICS.update(RECURRENCE)

from netc.compiler.sharing import SHARING  # noqa: E402  (shared)

INTRINSICS.update(SHARING)

from netc.compiler.spatial_transformer import SPATIAL_TRANSFORMER  # noqa: E402

INTRINSICS[SPATIAL_TRANSFORMER.name] = SPATIAL_TRANSFORMER
