"""Reference semantics of embeddings (table lookup) and one-hot encoding."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref


@ref("embed")
def embed(ids, weight):
    # Row ids[i] of the table, for every position i.
    return weight[ids]


@ref("one_hot")
def one_hot(ids, depth_tensor=None, *, depth, dtype, axis):
    if depth_tensor is not None:  # a depth known only at run time
        depth = int(depth_tensor)
    wrapped = np.where(ids < 0, ids + depth, ids)
    hot = wrapped[..., None] == np.arange(depth)  # out-of-range ids match no column
    return np.moveaxis(hot, -1, axis).astype(dtype.numpy)
