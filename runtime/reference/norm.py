"""Reference semantics of normalisation, dropout, PReLU and maxout (structures.md)."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref


def _channel(v: np.ndarray, rank: int, axis: int = 1) -> np.ndarray:
    """A per-channel vector [C] shaped to broadcast over `axis` of a rank-`rank` tensor."""
    return v.reshape((1,) * axis + (-1,) + (1,) * (rank - axis - 1))


@ref("batchnorm")
def batchnorm(x, scale, bias, mean, var, *, eps, momentum, axis=1):
    # y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta, with the stored statistics of each
    # index of `axis`.
    x64 = x.astype(np.float64)
    r = x.ndim

    def per(v):
        return _channel(v.astype(np.float64), r, axis)

    y = per(scale) * (x64 - per(mean)) / np.sqrt(per(var) + eps)
    return (y + per(bias)).astype(x.dtype)


@ref("layernorm")
def layernorm(x, scale, bias=None, *, eps):
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=-1, keepdims=True)
    var = ((x64 - mu) ** 2).mean(axis=-1, keepdims=True)
    y = (x64 - mu) / np.sqrt(var + eps) * scale
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)


@ref("dropout", random=True)
def dropout(x, *, p, mode, training, seed, rng):
    if training and p > 0:  # each unit dropped with probability p; inverted dropout rescales the rest
        kept = rng.random(x.shape) >= p
        scale = 1 / (1 - p) if mode == "inverted" else 1.0
        return np.where(kept, x * scale, 0).astype(x.dtype)
    if mode == "inverted":  # units were scaled by 1/(1-p) while training
        return x.copy()
    return (x * np.asarray(1 - p, dtype=x.dtype)).astype(x.dtype)


@ref("prelu")
def prelu(x, slope):
    a = slope if x.ndim < 2 or slope.size == 1 else _channel(slope, x.ndim)
    return (np.maximum(x, 0) + a * np.minimum(x, 0)).astype(x.dtype)


@ref("maxout")
def maxout(x, *, pieces, axis):
    axis %= x.ndim
    shape = (*x.shape[:axis], x.shape[axis] // pieces, pieces, *x.shape[axis + 1:])
    return x.reshape(shape).max(axis=axis + 1)
