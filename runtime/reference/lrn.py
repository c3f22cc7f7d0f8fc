"""Reference semantics of local response normalisation, from the definition (a loop over
channels, each summing the squares of its window)."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref


@ref("lrn")
def lrn(x, *, size, alpha, beta, bias):
    x64 = x.astype(np.float64)
    channels = x.shape[1]
    before, after = (size - 1) // 2, size // 2  # floor and ceil of (size - 1) / 2
    y = np.empty_like(x64)
    for c in range(channels):
        window = x64[:, max(0, c - before):min(channels, c + after + 1)]
        y[:, c] = x64[:, c] / (bias + alpha / size * (window ** 2).sum(axis=1)) ** beta
    return y.astype(x.dtype)
