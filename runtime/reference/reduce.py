"""Reference semantics of reductions and arg-reductions."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref


def _reduction(fn):
    def reduce(x, *, axes, keepdims):
        return np.asarray(fn(x, axis=tuple(axes), keepdims=keepdims)).astype(x.dtype)
    return reduce


ref("sum")(_reduction(np.sum))
ref("mean")(_reduction(np.mean))
ref("max")(_reduction(np.max))
ref("min")(_reduction(np.min))
ref("prod")(_reduction(np.prod))


def _first_index(x, axis, keepdims, pick):
    # The first position along `axis` that holds the extreme value.
    extreme = pick(x, axis=axis, keepdims=True)
    hit = x == extreme
    index = np.argmax(hit, axis=axis, keepdims=keepdims)  # argmax of booleans: first True
    return index.astype(np.int64)


@ref("argmax")
def argmax(x, *, axis, keepdims):
    return _first_index(x, axis, keepdims, np.max)


@ref("argmin")
def argmin(x, *, axis, keepdims):
    return _first_index(x, axis, keepdims, np.min)
