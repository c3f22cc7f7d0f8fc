"""Reference semantics of the shape ops: rearranging elements in row-major (C) order."""

from __future__ import annotations

import math

import numpy as np

from netc.runtime.reference.registry import ref


@ref("flatten")
def flatten(x, *, axis):
    outer = math.prod(x.shape[:axis])
    return x.reshape(outer, math.prod(x.shape[axis:]))


@ref("reshape")
def reshape(x, *, shape):
    return x.reshape(shape)


@ref("transpose")
def transpose(x, *, perm):
    return np.ascontiguousarray(np.transpose(x, perm))


@ref("concat")
def concat(*xs, axis):
    return np.concatenate(xs, axis=axis)


@ref("split")
def split(x, *, sizes, axis):
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.ascontiguousarray(p) for p in np.split(x, bounds, axis=axis))


@ref("squeeze")
def squeeze(x, *, axes):
    return np.squeeze(x, axis=tuple(axes)) if axes else x.copy()


@ref("unsqueeze")
def unsqueeze(x, *, axes):
    return np.expand_dims(x, tuple(axes))


@ref("cast")
def cast(x, *, dtype):
    target = dtype.numpy
    if np.issubdtype(x.dtype, np.floating) and np.issubdtype(target, np.integer):
        return np.trunc(x).astype(target)  # toward zero
    return x.astype(target)
