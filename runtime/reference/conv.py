"""Reference semantics of convolution, written from the definition: every output element is
the sum over a window of the (zero-padded) input times the filter, i.e. a direct
sliding-window cross-correlation. Also the window extraction that pooling shares."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from netc.dsl.errors import NetcInputError
from netc.runtime.reference.math import apply_activation
from netc.runtime.reference.registry import ref

_LETTERS = "abdehijklmopqrstuvwxyz"  # einsum subscripts for spatial and kernel axes


def same_pads(sizes: Sequence[int], extents: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """Padding that makes the output length ceil(size / stride), the odd element at the end."""
    pairs = []
    for size, extent, stride in zip(sizes, extents, strides):
        out = -(-size // stride)
        total = max((out - 1) * stride + extent - size, 0)
        pairs.append((total // 2, total - total // 2))
    return pairs


def out_length(size: int, begin: int, end: int, extent: int, stride: int, ceil: bool) -> int:
    """How many window positions fit; ceil mode adds a last partial window unless it would
    start past the input (inside the end padding or beyond)."""
    room = size + begin + end - extent
    if not ceil:
        return room // stride + 1
    count = -(-room // stride) + 1
    if (count - 1) * stride - begin >= size:
        count -= 1
    return count


def windows(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
            pads: Sequence[int] | None, ceil: bool, pad_value: float,
            overflow_value: float | None = None) -> np.ndarray:
    """Every window of `x` [N, C, *spatial] as an array [N, C, *out, *kernel].

    `pads` (all begins, then all ends; None for "same") are filled with `pad_value`; the part
    of a ceil-mode window that reaches past the end padding with `overflow_value`."""
    n = len(kernel)
    sizes = x.shape[2:]
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    pairs = same_pads(sizes, extents, stride) if pads is None else list(zip(pads[:n], pads[n:]))
    outs = [out_length(size, b, e, ext, s, ceil) for size, (b, e), ext, s in zip(sizes, pairs, extents, stride)]
    if min(outs) < 1:
        raise NetcInputError(f"input spatial shape {list(sizes)} is smaller than the window {extents} "
                             "with its padding")
    lead = [(0, 0), (0, 0)]
    xp = np.pad(x, lead + pairs, constant_values=pad_value)
    overflow = [(0, max(0, (o - 1) * s + ext - xp.shape[2 + i]))
                for i, (o, s, ext) in enumerate(zip(outs, stride, extents))]
    fill = pad_value if overflow_value is None else overflow_value
    xp = np.pad(xp, lead + overflow, constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(xp, extents, axis=tuple(range(2, 2 + n)))
    picks = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(outs, stride))
    taps = tuple(slice(None, None, d) for d in dilation)
    return view[(slice(None), slice(None), *picks, *taps)]


def _conv(x, weight, bias=None, *, kernel, stride, dilation, pads, groups, act):
    n = len(kernel)
    v = windows(x.astype(np.float64), kernel, stride, dilation, pads, False, 0.0)
    batch, channels, *outs = v.shape[: 2 + n]
    filters = weight.shape[0]
    v = v.reshape(batch, groups, channels // groups, *outs, *kernel)
    w = weight.astype(np.float64).reshape(groups, filters // groups, channels // groups, *kernel)
    o = _LETTERS[:n]
    # y[n, g, f, o] = sum over kernel offsets k and channels c of v[n, g, c, o, k] * w[g, f, c, k]:
    # one product per offset, so no [N, C, outs, kernel] copy of the windows is made (for
    # VGG-16's first layer that copy alone was 460 MB).
    y = np.zeros((batch, groups, filters // groups, *outs))
    for k in np.ndindex(*kernel):
        y += np.einsum(f"ngc{o},gfc->ngf{o}", v[(..., *k)], w[(..., *k)], optimize=True)
    y = y.reshape(batch, filters, *outs)
    if bias is not None:
        y = y + bias.astype(np.float64).reshape(filters, *(1,) * n)
    return apply_activation(act, y.astype(x.dtype))


ref("conv1d")(_conv)
ref("conv2d")(_conv)
