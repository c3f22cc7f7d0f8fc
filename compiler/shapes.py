"""Shape rules shared by many ops: broadcasting, axis handling, equality of symbolic dims."""

from __future__ import annotations

from collections.abc import Sequence

from netc.compiler import dims as D
from netc.compiler.dims import Dim
from netc.compiler.ir import TensorType, Value


def same_dim(a: Dim, b: Dim) -> bool:
    return a == b  # canonical form: structural equality is algebraic equality


def broadcast_shapes(a: Sequence[Dim], b: Sequence[Dim]) -> tuple[Dim, ...] | None:
    """NumPy broadcasting over symbolic dims; None when the shapes do not broadcast.
    A symbolic dim broadcasts only against itself or 1: netc never guesses that N == 5."""
    out: list[Dim] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if same_dim(x, y) or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(reversed(out))


def broadcast_types(b, name: str, *types: TensorType) -> tuple[Dim, ...]:
    """The broadcast shape of `types` for the op `name`; a located error (builder `b`) when
    they do not broadcast."""
    shape: tuple[Dim, ...] | None = types[0].shape
    for t in types[1:]:
        shape = broadcast_shapes(shape, t.shape) if shape is not None else None
    if shape is None:
        raise b.error(f"{name}: shapes {' and '.join(str(t) for t in types)} do not broadcast",
                      "shapes broadcast when, from the last axis, each pair of dims is equal or one is 1")
    return shape


def replace_dim(shape: Sequence[Dim], axis: int, d: Dim) -> tuple[Dim, ...]:
    """`shape` with the dim at `axis` replaced by `d`."""
    out = list(shape)
    out[axis] = d
    return tuple(out)


def numel(shape: Sequence[Dim]) -> Dim:
    total: Dim = 1
    for d in shape:
        total = D.mul(total, d)
    return total


def describe_types(types: Sequence[TensorType | None]) -> str:
    return " and ".join(str(t) for t in types if t is not None)


def tensor_axis(b, name: str, x: Value, axis: int) -> int:
    """`axis` of `x` as 0..rank-1, for the op `name` working along one axis: x must have
    rank >= 1 and the axis must be in range (located errors through the builder `b`)."""
    if x.type.rank < 1:
        raise b.error(f"{name} needs a tensor of rank >= 1; got {x.type}")
    return b.axis(axis, x.type.rank, f"{name}: axis")


def tensor_or_none(b, what: str, name: str, value) -> Value | None:
    """An optional tensor argument of op `what` (a mask, lengths): a tensor, or none."""
    if value is None or isinstance(value, Value):
        return value
    raise b.type_error(f"{what}: '{name}' expects a tensor or none; got {type(value).__name__}")
