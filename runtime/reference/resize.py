"""Reference semantics of resizing, from the coordinate rules (netc.compiler.ops.resize):
one spatial axis at a time, each output index reading its source coordinate, nearest
taking the floor, linear interpolating its two neighbours."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref


def _axis(x: np.ndarray, axis: int, out: int, ratio: float, mode: str, align_corners: bool) -> np.ndarray:
    """Resize axis `axis` of `x` to `out` elements; `ratio` is input length / output length."""
    length = x.shape[axis]
    j = np.arange(out, dtype=np.float64)
    if mode == "nearest":
        src = np.minimum(np.floor(j * ratio).astype(np.int64), length - 1)
        return np.take(x, src, axis=axis)
    if align_corners:
        coord = j * (length - 1) / (out - 1) if out > 1 else np.zeros(out)
    else:
        coord = np.maximum((j + 0.5) * ratio - 0.5, 0.0)
    low = np.minimum(np.floor(coord).astype(np.int64), length - 1)
    high = np.minimum(low + 1, length - 1)
    weight = (coord - low).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    return np.take(x, low, axis=axis) * (1 - weight) + np.take(x, high, axis=axis) * weight


def _resize(x, *, size, scale, mode, align_corners):
    y = x.astype(np.float64)
    for i in range(x.ndim - 2):
        length = x.shape[2 + i]
        if size is not None:  # symbolic sizes arrive resolved
            out = int(size[i])
            ratio = length / out
        else:
            # L' = floor(L * scale) computed in float32, as the op defines it; L / L' reads 1 / scale.
            out = int(np.floor(np.float32(length) * np.float32(scale[i])))
            ratio = 1.0 / scale[i]
        y = _axis(y, 2 + i, out, ratio, mode, align_corners)
    return y.astype(x.dtype)


ref("resize")(_resize)


@ref("upsample")
def upsample(x, *, size, scale, mode, align_corners):
    return _resize(x, size=size, scale=scale, mode=mode, align_corners=align_corners)
