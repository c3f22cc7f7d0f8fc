"""Reference semantics of pooling, from the definitions: the maximum, mean or L2 norm
sqrt(sum x^2) of each window. Max pads with -inf (padding never wins), mean and L2 with
zeros; the mean divides by the real elements of the window, or with `count_pad` by every
element inside the padded input."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.conv import windows
from netc.runtime.reference.registry import ref


def _kernel_axes(kernel) -> tuple[int, ...]:
    n = len(kernel)
    return tuple(range(2 + n, 2 + 2 * n))


@ref("maxpool")
def maxpool(x, *, kernel, stride, pads, ceil):
    v = windows(x, kernel, stride, (1,) * len(kernel), pads, ceil, -np.inf)
    return v.max(axis=_kernel_axes(kernel))


@ref("avgpool")
def avgpool(x, *, kernel, stride, pads, ceil, count_pad):
    ones = (1,) * len(kernel)
    axes = _kernel_axes(kernel)
    total = windows(x.astype(np.float64), kernel, stride, ones, pads, ceil, 0.0).sum(axis=axes)
    # Count window elements with a mask: 1 for the input, 1 or 0 for the padding, 0 past it.
    mask = np.ones((1, 1, *x.shape[2:]))
    count = windows(mask, kernel, stride, ones, pads, ceil, float(count_pad), 0.0).sum(axis=axes)
    return (total / count).astype(x.dtype)


@ref("l2pool")
def l2pool(x, *, kernel, stride, pads, ceil):
    v = windows(x.astype(np.float64), kernel, stride, (1,) * len(kernel), pads, ceil, 0.0)
    return np.sqrt(np.square(v).sum(axis=_kernel_axes(kernel))).astype(x.dtype)


def _spatial(x: np.ndarray) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


@ref("global_maxpool")
def global_maxpool(x):
    return x.max(axis=_spatial(x), keepdims=True)


@ref("global_avgpool")
def global_avgpool(x):
    return x.astype(np.float64).mean(axis=_spatial(x), keepdims=True).astype(x.dtype)


@ref("global_l2pool")
def global_l2pool(x):
    x64 = x.astype(np.float64)
    return np.sqrt(np.square(x64).sum(axis=_spatial(x), keepdims=True)).astype(x.dtype)
