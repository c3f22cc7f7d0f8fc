"""Reference semantics of indexing by computed positions, ranges and run-time lengths,
written from the definitions in compiler/ops/indexing.py."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref


def _wrap(idx: np.ndarray, n: int) -> np.ndarray:
    """Negative indices count from the end; anything outside [-n, n) is an error."""
    idx = idx.astype(np.int64)
    if ((idx < -n) | (idx >= n)).any():
        raise IndexError(f"index out of range for an axis of size {n}")
    return np.where(idx < 0, idx + n, idx)


@ref("gather")
def gather(x, idx, *, axis):
    # out[a, i, b] = x[a, idx[i], b]: one slice of x per index, in place of the axis
    return np.take(x, _wrap(idx, x.shape[axis]), axis=axis)


def _positions(x: np.ndarray, idx: np.ndarray, axis: int) -> tuple:
    """The coordinates into x of every element of idx: its own, with idx's value on `axis`."""
    grid = list(np.indices(idx.shape, sparse=False))
    grid[axis] = _wrap(idx, x.shape[axis])
    return tuple(grid)


@ref("take_along")
def take_along(x, idx, *, axis):
    return x[_positions(x, idx, axis)]


@ref("scatter")
def scatter(x, idx, updates, *, axis, reduction):
    out = x.copy()
    where = _positions(x, idx, axis)
    if reduction == "none":
        out[where] = updates
    else:
        {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[reduction].at(out, where, updates)
    return out


@ref("topk")
def topk(x, *, k, axis, largest):
    key = x.astype(np.float64 if np.issubdtype(x.dtype, np.floating) else np.int64)
    order = np.argsort(-key if largest else key, axis=axis, kind="stable")  # stable: lower index first
    indices = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, indices, axis=axis), indices.astype(np.int64)


@ref("compress")
def compress(x, mask, *, axis, length):
    return np.compress(mask, x, axis=axis)


@ref("nonzero")
def nonzero(mask, *, length):
    return np.array(np.nonzero(mask.reshape(mask.shape or (1,))), dtype=np.int64).reshape(max(mask.ndim, 1), -1)


@ref("dim_value")
def dim_value(*, dim, dtype):
    return np.asarray(dim, dtype=dtype.numpy)


@ref("arange")
def arange(*, start, stop, step, dtype):
    return np.arange(start, stop, step).astype(dtype.numpy)


@ref("expand")
def expand(x, *, shape):
    return np.broadcast_to(x, shape).copy()


@ref("compact")
def compact(x, mask, *, axis, pad, length):
    # Move the axis last; every line keeps its masked elements in order, then padding.
    xs, ms = np.moveaxis(x, axis, -1), np.moveaxis(mask, axis, -1)
    lines = xs.reshape(-1, xs.shape[-1])
    keep = ms.reshape(-1, ms.shape[-1])
    lengths = keep.sum(axis=-1)
    longest = int(lengths.max()) if lengths.size else 0
    out = np.full((lines.shape[0], longest), pad, dtype=x.dtype)
    for r in range(lines.shape[0]):
        kept = lines[r][keep[r]]
        out[r, :kept.size] = kept
    out = np.moveaxis(out.reshape(*xs.shape[:-1], longest), -1, axis)
    return np.ascontiguousarray(out), lengths.reshape(xs.shape[:-1]).astype(np.int64)
