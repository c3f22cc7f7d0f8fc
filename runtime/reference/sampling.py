"""Reference semantics of affine_grid and grid_sample, from the definitions
(netc.compiler.ops.sampling): coordinates computed point by point in float64, neighbours
read with explicit bounds checks."""

from __future__ import annotations

import numpy as np

from netc.runtime.reference.registry import ref


def _base(n: int, align_corners: bool) -> np.ndarray:
    """The normalised coordinates of n target pixels in [-1, 1]."""
    if align_corners:
        return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return (2 * np.arange(n) + 1) / n - 1


@ref("affine_grid")
def affine_grid(theta, *, size, align_corners):
    h, w = int(size[0]), int(size[1])
    t = theta.astype(np.float64).reshape(-1, 2, 3)
    xs, ys = _base(w, align_corners), _base(h, align_corners)
    points = np.stack([np.broadcast_to(xs, (h, w)), np.broadcast_to(ys[:, None], (h, w)), np.ones((h, w))], -1)
    grid = np.einsum("hwk,nck->nhwc", points, t)
    return grid.astype(theta.dtype)


def _reflect(coord: np.ndarray, low2: float, high2: float) -> np.ndarray:
    """Mirror `coord` into [low2 / 2, high2 / 2] (bounds given doubled, as they are half-integers)."""
    if low2 == high2:
        return np.zeros_like(coord)
    low, span = low2 / 2, (high2 - low2) / 2
    c = np.abs(coord - low)
    extra = np.fmod(c, span)
    flips = np.floor(c / span)
    return np.where(flips % 2 == 0, extra + low, span - extra + low)


def _source(g: np.ndarray, size: int, padding_mode: str, align_corners: bool) -> np.ndarray:
    """Pixel coordinate of normalised `g` along an axis of `size` pixels, after padding_mode."""
    c = (g + 1) / 2 * (size - 1) if align_corners else ((g + 1) * size - 1) / 2
    if padding_mode == "border":
        c = np.clip(c, 0, size - 1)
    elif padding_mode == "reflection":
        c = _reflect(c, 0, 2 * (size - 1)) if align_corners else _reflect(c, -1, 2 * size - 1)
        c = np.clip(c, 0, size - 1)
    return c


def _read(img: np.ndarray, yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """img [C, H, W] at integer (yi, xi) [Ho, Wo]; 0 where outside -> [C, Ho, Wo]."""
    h, w = img.shape[1:]
    inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    values = img[:, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    return values * inside


@ref("grid_sample")
def grid_sample(x, grid, *, mode, padding_mode, align_corners):
    n, c, h, w = x.shape
    out = np.zeros((n, c, *grid.shape[1:3]))
    for b in range(n):
        img = x[b].astype(np.float64)
        ix = _source(grid[b, ..., 0].astype(np.float64), w, padding_mode, align_corners)
        iy = _source(grid[b, ..., 1].astype(np.float64), h, padding_mode, align_corners)
        if mode == "nearest":
            out[b] = _read(img, np.rint(iy).astype(np.int64), np.rint(ix).astype(np.int64))
            continue
        x0, y0 = np.floor(ix).astype(np.int64), np.floor(iy).astype(np.int64)
        fx, fy = ix - x0, iy - y0
        out[b] = (_read(img, y0, x0) * (1 - fy) * (1 - fx) + _read(img, y0, x0 + 1) * (1 - fy) * fx
                  + _read(img, y0 + 1, x0) * fy * (1 - fx) + _read(img, y0 + 1, x0 + 1) * fy * fx)
    return out.astype(x.dtype)
