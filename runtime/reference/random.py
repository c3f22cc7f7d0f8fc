"""Reference semantics of the random ops, from their definitions, with NumPy's generator
(the draws agree with onnxruntime's in distribution, not value by value)."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref


@ref("random_normal", random=True)
def random_normal(like=None, *, shape, mean, scale, dtype, seed, rng):
    size = like.shape if like is not None else shape
    return (mean + scale * rng.standard_normal(size)).astype(dtype.numpy)


@ref("random_uniform", random=True)
def random_uniform(like=None, *, shape, low, high, dtype, seed, rng):
    size = like.shape if like is not None else shape
    return (low + (high - low) * rng.random(size)).astype(dtype.numpy)


@ref("bernoulli", random=True)
def bernoulli(p, *, dtype, seed, rng):
    # 1 where a uniform draw in [0, 1) falls below p: probability p exactly
    return (rng.random(p.shape) < p).astype(dtype.numpy)


def categorical_sample(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One id per row of softmax(logits / temperature), by inverting the cumulative sum."""
    z = logits.astype(np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random((*logits.shape[:-1], 1)) * cdf[..., -1:]
    ids = (cdf <= u).sum(axis=-1)  # the first class whose cumulative probability exceeds u
    return np.minimum(ids, logits.shape[-1] - 1).astype(np.int64)


@ref("sample", random=True)
def sample(logits, *, temperature, seed, rng):
    return categorical_sample(logits, temperature, rng)
