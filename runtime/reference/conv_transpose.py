"""Reference semantics of transposed convolution, written from the definition: every input
element scatters its products with the kernel into the output, tap by tap, into a buffer
of the full (unpadded) length, which is then cropped by the padding."""

from __future__ import annotations

import itertools

import numpy as np

from netc.runtime.reference.math import apply_activation
from netc.runtime.reference.registry import ref


def _conv_transpose(x, weight, bias=None, *, kernel, stride, dilation, pads, output_pad, groups, act):
    n = len(kernel)
    batch, channels, *sizes = x.shape
    per_group = weight.shape[1]
    filters = per_group * groups
    full = [(size - 1) * s + d * (k - 1) + 1 + o for size, s, d, k, o in zip(sizes, stride, dilation, kernel, output_pad)]
    y = np.zeros((batch, filters, *full))
    xg = x.astype(np.float64).reshape(batch, groups, channels // groups, *sizes)
    wg = weight.astype(np.float64).reshape(groups, channels // groups, per_group, *kernel)
    for tap in itertools.product(*(range(k) for k in kernel)):
        # Input position i lands on output i*s + d*j (before cropping the begin padding).
        contrib = np.einsum("ngc...,gcf->ngf...", xg, wg[(slice(None), slice(None), slice(None), *tap)])
        where = tuple(slice(d * j, d * j + (size - 1) * s + 1, s)
                      for j, d, s, size in zip(tap, dilation, stride, sizes))
        y[(slice(None), slice(None), *where)] += contrib.reshape(batch, filters, *sizes)
    crop = tuple(slice(pads[i], full[i] - pads[n + i]) for i in range(n))
    y = y[(slice(None), slice(None), *crop)]
    if bias is not None:
        y = y + bias.astype(np.float64).reshape(filters, *(1,) * n)
    return apply_activation(act, y.astype(x.dtype))


ref("conv_transpose1d")(_conv_transpose)
ref("conv_transpose2d")(_conv_transpose)
