"""Differentiable image sampling (the spatial transformer's grid generator and sampler):

    affine_grid(theta [N, 2, 3] or [N, 6], size=[H, W]) -> grid [N, H, W, 2]
        grid[n, i, j] = theta[n] @ (x_j, y_i, 1), over the normalised target coordinates
        x_j, y_i in [-1, 1]: align_corners=false puts them at pixel centres,
        x_j = (2j + 1) / W - 1; align_corners=true at the corner pixels, x_j = 2j / (W - 1) - 1.
    grid_sample(x [N, C, H, W], grid [N, Ho, Wo, 2]) -> [N, C, Ho, Wo]
        output (n, c, i, j) samples x[n, c] at grid[n, i, j] = (gx, gy) in [-1, 1] (x
        across W, y across H), unnormalised as ((g + 1) * W - 1) / 2 (align_corners=false)
        or (g + 1) / 2 * (W - 1) (true); bilinear weighs the 4 neighbours, nearest rounds
        half to even. Outside the image: padding_mode "zeros" reads 0 for every missing
        neighbour, "border" clamps the coordinate into the image, "reflection" mirrors it at
        the borders (at the corner pixels' centres with align_corners=true, at the image's
        edges with false), then clamps.

These are PyTorch's F.affine_grid and F.grid_sample. Lowered to ONNX AffineGrid and
GridSample (opset 20): the sampler reads 4 neighbours per output element, never an
(H*W) x (H*W) matrix.
"""

from __future__ import annotations

from typing import Any

from netc.compiler import dims as D
from netc.compiler.ir import TensorType
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import numel, same_dim
from netc.compiler.values import describe

MODES = ("bilinear", "nearest")
PADDING = ("zeros", "border", "reflection")


def check_size(b, fname: str, size: Any) -> tuple[D.Dim, D.Dim]:
    items = list(size) if isinstance(size, list | tuple) else None
    if items is None or len(items) != 2 or not all(D.is_dim(d) for d in items):
        raise b.type_error(f"{fname}: 'size' expects the output [H, W] (integers or symbolic dims); "
                           f"got {describe(size)}", "e.g. size=[28, 28], or size=[dim(x, 2), dim(x, 3)]")
    if any(isinstance(d, int) and d < 1 for d in items):
        raise b.type_error(f"{fname}: output sizes must be positive; got {items}")
    return items[0], items[1]


def _check_theta(b, fname: str, theta: TensorType) -> None:
    if not theta.dtype.is_float:
        raise b.type_error(f"{fname}: theta must be a floating-point tensor; got {theta}")
    if not ((theta.rank == 3 and theta.shape[1:] == (2, 3)) or (theta.rank == 2 and theta.shape[1] == 6)):
        raise b.error(f"{fname}: theta must be [N, 2, 3] (or [N, 6], row-major) 2-D affine transforms; got {theta}",
                      "the localisation network ends in dense(6, weight_init=zeros, bias_init=[1, 0, 0, 0, 1, 0]) "
                      "to start at the identity")


@register
class AffineGrid(OpDef):
    name = "affine_grid"
    doc = ("sampling grid [N, H, W, 2] of the affine maps theta [N, 2, 3] (or [N, 6]) over normalised "
           "[-1, 1] target coordinates (F.affine_grid)")
    signature = (
        Arg("theta", "tensor"),
        Arg("size", "any", doc="output [H, W]: ints or symbolic dims"),
        Arg("align_corners", "bool", False),
    )
    cases = (
        Case("affine_grid(t, size=[4, 5])", {"t": "{f}[N, 2, 3]"}),
        Case("affine_grid(t, size=[H, W], align_corners=true)", {"t": "{f}[2, 2, 3]", "x": "{f}[1, 1, H, W]"},
             note="symbolic size from another input"),
        Case("affine_grid(t, size=[1, 3])", {"t": "{f}[N, 6]"}, note="flat theta"),
    )

    def build(self, b, theta, size, align_corners):
        _check_theta(b, self.name, theta.type)
        h, w = check_size(b, self.name, size)
        return b.emit(self.name, [theta], {"size": (h, w), "align_corners": align_corners})[0]

    def infer(self, attrs, inputs, b):
        (theta,) = inputs
        _check_theta(b, self.name, theta)
        h, w = attrs["size"]
        return [TensorType(theta.dtype, (theta.shape[0], h, w, 2))]

    def flops(self, op):
        return D.mul(numel(op.outputs[0].type.shape), 6)  # a 2x3 matrix times (x, y, 1) per point

    def lower(self, ctx, op, inputs):
        (theta,) = inputs
        if op.inputs[0].type.rank == 2:
            theta = ctx.node("Reshape", [theta, ctx.ints([-1, 2, 3])])[0]
        batch = ctx.node("Shape", [theta], start=0, end=1)[0]
        # AffineGrid reads [N, C, H, W]; C does not matter for the grid.
        size = ctx.node("Concat", [batch, ctx.ints([1]), ctx.shape_tensor(list(op.attrs["size"]))], axis=0)[0]
        return ctx.node("AffineGrid", [theta, size], align_corners=int(op.attrs["align_corners"]))


@register
class GridSample(OpDef):
    name = "grid_sample"
    doc = ("sample x [N, C, H, W] at grid [N, Ho, Wo, 2] (normalised (x, y) in [-1, 1]): bilinear or nearest, "
           "zeros/border/reflection padding (F.grid_sample)")
    signature = (
        Arg("x", "tensor"),
        Arg("grid", "tensor"),
        Arg("mode", "choice", "bilinear", choices=MODES),
        Arg("padding_mode", "choice", "zeros", choices=PADDING),
        Arg("align_corners", "bool", False),
    )
    cases = (
        Case("grid_sample(x, g * 1.2)", {"x": "{f}[2, 3, 5, 6]", "g": "{f}[2, 4, 3, 2]"}, note="zeros padding"),
        Case('grid_sample(x, g * 1.5, padding_mode="border", align_corners=true)',
             {"x": "{f}[N, 2, H, W]", "g": "{f}[N, 3, 4, 2]"}),
        Case('grid_sample(x, g * 2, padding_mode="reflection")', {"x": "{f}[N, 2, 4, 5]", "g": "{f}[N, 4, 4, 2]"}),
        Case('grid_sample(x, g * 3, padding_mode="reflection", align_corners=true)',
             {"x": "{f}[2, 1, 3, 4]", "g": "{f}[2, 5, 5, 2]"}),
        Case('grid_sample(x, g, mode="nearest")', {"x": "{f}[2, 2, 5, 5]", "g": "{f}[2, 3, 3, 2]"}),
        Case('grid_sample(x, g * 1.5, mode="nearest", padding_mode="border")',
             {"x": "{f}[N, 2, 4, 6]", "g": "{f}[N, 3, 3, 2]"}),
        Case('grid_sample(x, g * 2.5, mode="nearest", padding_mode="reflection", align_corners=true)',
             {"x": "{f}[2, 2, 4, 3]", "g": "{f}[2, 3, 3, 2]"}),
        Case("grid_sample(x, affine_grid(t, size=[3, 4]))", {"x": "{f}[N, 2, 5, 5]", "t": "{f}[N, 2, 3]"},
             note="the spatial transformer's sampler"),
    )

    def infer(self, attrs, inputs, b):
        x, grid = inputs
        if x.rank != 4 or not x.dtype.is_float:
            raise b.error(f"grid_sample samples an image [N, C, H, W] of floats; got {x}")
        if grid.rank != 4 or grid.shape[3] != 2 or grid.dtype != x.dtype:
            raise b.error(f"grid_sample: grid must be [N, Ho, Wo, 2] of {x.dtype.value} ((x, y) per output point); "
                          f"got {grid}", "make one with affine_grid(theta, size=[Ho, Wo])")
        if not same_dim(x.shape[0], grid.shape[0]):
            raise b.error(f"grid_sample: the batch of {x} and of grid {grid} differ")
        return [TensorType(x.dtype, (x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]))]

    def flops(self, op):
        per = 8 if op.attrs["mode"] == "bilinear" else 1  # 4 neighbours, a multiply-add each
        return D.mul(numel(op.outputs[0].type.shape), per)

    def lower(self, ctx, op, inputs):
        a = op.attrs
        mode = "linear" if a["mode"] == "bilinear" else "nearest"  # ONNX's names since opset 20
        return ctx.node("GridSample", inputs, mode=mode, padding_mode=a["padding_mode"],
                        align_corners=int(a["align_corners"]))
