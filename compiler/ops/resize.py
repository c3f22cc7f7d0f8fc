"""Resizing the spatial axes of [N, C, L], [N, C, H, W] or [N, C, D, H, W]: `resize` to a
size or by a scale, `upsample` by a scale. Per spatial axis of input length L and output
length L', an output index j reads the source coordinate

    nearest                       floor(j * L / L')   (clamped to L - 1)
    linear, align_corners=false   max((j + 0.5) * L / L' - 0.5, 0)  (the half-pixel rule)
    linear, align_corners=true    j * (L - 1) / (L' - 1)  (0 when L' = 1)

and linear mode interpolates between the two neighbouring elements (bilinear on images),
the upper one clamped to L - 1. These are PyTorch's `F.interpolate` rules ("nearest",
"linear"/"bilinear"/"trilinear"); given a `scale`, L' = floor(L * scale) in float32 (as
onnxruntime), and L / L' reads 1 / scale, as PyTorch does without recompute_scale_factor. Lowered to one ONNX `Resize`
over the spatial axes (coordinate modes asymmetric + floor, half_pixel,
align_corners).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, TensorType
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.ops.spatial import axis_names
from netc.compiler.shapes import numel
from netc.compiler.values import describe

_MODES = ("nearest", "linear")


def _check_input(b, fname: str, x: TensorType) -> None:
    if x.rank not in (3, 4, 5):
        raise b.error(f"{fname} resizes the axes after [N, C] of a tensor of rank 3 to 5; got {x} (rank {x.rank})",
                      "add a channel axis first: x -> unsqueeze(1)")
    if not x.dtype.is_float:
        raise b.type_error(f"{fname} needs a floating-point tensor; got {x}", "convert with cast(x, f32)")


def _check_scale(b, fname: str, scale: Any, size: D.Dim, axis: str) -> float:
    """A positive scale; on a symbolic axis one whose floor(L * scale) has an exact form."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
        raise b.type_error(f"{fname}: 'scale' expects positive numbers; got {describe(scale)}")
    denominator = Fraction(scale).denominator
    if not isinstance(size, int) and (denominator > 64 or denominator & (denominator - 1)):
        # Dyadic scales make float32(L) * float32(scale), which onnxruntime floors, exact.
        raise b.type_error(f"{fname}: scale {scale:g} on the symbolic axis {axis} ({size}) is not a multiple "
                           "of 1/64 with a power-of-two denominator, so floor(L * scale) has no exact form",
                           "use a scale like 2, 0.5, 1.5 or 0.25, or size=[...]")
    return float(scale)


def scaled_length(size: D.Dim, scale: float) -> D.Dim:
    """floor(L * scale), in float32 arithmetic as onnxruntime and onnx's shape inference do."""
    if isinstance(size, int):
        return int(np.floor(np.float32(size) * np.float32(scale)))
    frac = Fraction(scale)
    return D.floordiv(D.mul(size, frac.numerator), frac.denominator)


class _Resize(OpDef):
    float_dtypes = (DType.f32,)  # onnxruntime's CPU Resize kernel has no float64

    def _build(self, b, x, size, scale, mode, align_corners):
        fname = self.name
        _check_input(b, fname, x.type)
        n = x.type.rank - 2
        names = axis_names(n)
        spatial = x.type.shape[2:]
        if (size is None) == (scale is None):
            raise b.type_error(f"{fname}: give exactly one of size=[...] and scale=...",
                               "size is the output length per spatial axis; scale multiplies the input's")
        if align_corners and mode == "nearest":
            raise b.type_error(f"{fname}: align_corners applies to mode=\"linear\" only",
                               "nearest picks floor(j * L / L'), as PyTorch's mode='nearest'")
        if size is not None:
            items = list(size) if isinstance(size, list | tuple) else [size]
            if len(items) == 1:
                items = items * n
            if len(items) != n or not all(D.is_dim(d) for d in items):
                raise b.type_error(f"{fname}: 'size' expects {n} output lengths (one per axis "
                                   f"{', '.join(names)}), integers or symbolic dims; got {describe(size)}")
            for d in items:
                if isinstance(d, int) and d < 1:
                    raise b.type_error(f"{fname}: output lengths must be positive; got {items}")
            return b.emit(fname, [x], {"size": tuple(items), "scale": None, "mode": mode,
                                       "align_corners": align_corners})[0]
        scales = list(scale) if isinstance(scale, list | tuple) else [scale]
        if len(scales) == 1:
            scales = scales * n
        if len(scales) != n:
            raise b.type_error(f"{fname}: 'scale' needs 1 or {n} values (one per axis {', '.join(names)}); "
                               f"got {len(scales)}")
        fracs = tuple(_check_scale(b, fname, s, d, a) for s, d, a in zip(scales, spatial, names))
        for d, f, a in zip(spatial, fracs, names):
            if isinstance(d, int) and scaled_length(d, f) < 1:
                raise b.error(f"{fname}: scale {float(f):g} leaves axis {a} of {x.type} empty (floor({d} * "
                              f"{float(f):g}) = 0)")
        return b.emit(fname, [x], {"size": None, "scale": fracs, "mode": mode, "align_corners": align_corners})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        _check_input(b, self.name, x)
        if attrs["size"] is not None:
            out = attrs["size"]
        else:
            out = tuple(scaled_length(d, f) for d, f in zip(x.shape[2:], attrs["scale"]))
        return [TensorType(x.dtype, (*x.shape[:2], *out))]

    def flops(self, op):
        # linear: 2^n neighbours per output element, a multiply-add each
        n = op.inputs[0].type.rank - 2
        per = 2 * 2 ** n if op.attrs["mode"] == "linear" else 0
        return D.mul(numel(op.outputs[0].type.shape), per)

    def lower(self, ctx, op, inputs):
        a = op.attrs
        rank = op.inputs[0].type.rank
        if a["mode"] == "nearest":
            coords = {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
        elif a["align_corners"]:
            coords = {"coordinate_transformation_mode": "align_corners"}
        else:
            coords = {"coordinate_transformation_mode": "half_pixel"}
        if a["size"] is not None:
            sizes = ctx.shape_tensor(list(a["size"]))
            args = [inputs[0], "", "", sizes]
        else:
            # The scale itself (not out/in), so the coordinate rule reads 1/scale, as PyTorch's.
            scales = ctx.const(np.array(a["scale"], np.float32), "scales")
            args = [inputs[0], "", scales]
        return ctx.node("Resize", args, mode=a["mode"], axes=list(range(2, rank)), **coords)


@register
class Resize(_Resize):
    name = "resize"
    doc = ("resize the axes after [N, C] to size=[...] or by scale=...: nearest or (bi/tri)linear, "
           "F.interpolate's coordinate rules (align_corners=false by default)")
    signature = (
        Arg("x", "tensor"),
        Arg("size", "any", None, doc="output lengths, one per spatial axis (ints or symbolic dims)"),
        Arg("scale", "any", None, doc="a number or one per spatial axis: L' = floor(L * scale)"),
        Arg("mode", "choice", "nearest", choices=_MODES),
        Arg("align_corners", "bool", False, doc="linear only: the corner elements of input and output align"),
    )
    cases = (
        Case("resize(x, size=[5, 7])", {"x": "{f}[2, 3, 4, 4]"}),
        Case('resize(x, size=[3, 8], mode="linear")', {"x": "{f}[N, 2, 5, 5]"}, note="down and up"),
        Case('resize(x, size=[6, 9], mode="linear", align_corners=true)', {"x": "{f}[N, 2, 4, 4]"}),
        Case('resize(x, scale=[1.5, 0.5], mode="linear")', {"x": "{f}[2, 2, H, W]"}, note="symbolic, fractions"),
        Case("resize(x, size=dim(y, 2))", {"x": "{f}[N, 2, T]", "y": "{f}[N, 1, L]"},
             note="to another tensor's symbolic length"),
        Case("resize(x, scale=3)", {"x": "{f}[1, 2, 2, 3, 2]"}, note="3-D nearest"),
    )

    def build(self, b, x, size, scale, mode, align_corners):
        return self._build(b, x, size, scale, mode, align_corners)


@register
class Upsample(_Resize):
    name = "upsample"
    doc = "resize(x, scale=scale): nearest (default) or linear upsampling of the axes after [N, C]"
    signature = (
        Arg("x", "tensor"),
        Arg("scale", "any", 2, doc="a number or one per spatial axis"),
        Arg("mode", "choice", "nearest", choices=_MODES),
        Arg("align_corners", "bool", False),
    )
    cases = (
        Case("upsample(x)", {"x": "{f}[N, 3, H, W]"}, note="2x nearest, symbolic"),
        Case('upsample(x, 2, mode="linear")', {"x": "{f}[N, 2, H, W]"}, note="bilinear, half-pixel"),
        Case('upsample(x, [2, 3], mode="linear", align_corners=true)', {"x": "{f}[2, 2, 3, 4]"}),
        Case("upsample(x, 4)", {"x": "{f}[2, 2, T]"}, note="1-D"),
    )

    def build(self, b, x, scale, mode, align_corners):
        return self._build(b, x, None, scale, mode, align_corners)
