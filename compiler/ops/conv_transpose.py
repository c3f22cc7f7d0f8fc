"""Transposed convolution over [N, C, L] and [N, C, H, W] (the gradient of a convolution
with respect to its input; "deconvolution" in GAN generators). Every input element x_i
scatters w_i * x_i into the output window it maps to:

    y[n, g*Fg + f, i*s - p_begin + d*j] += x[n, g*Cg + c, i] * w[g*Cg + c, f, j]

summed over groups g, input channels c, input positions i and kernel taps j, plus bias[f].
Output length per axis, with e = d*(k - 1) + 1 the kernel's extent:

    (L - 1)*s - p_begin - p_end + e + output_pad

`pad="same"` chooses the padding that makes the output L*s (the inverse of a strided
"same" convolution; TensorFlow's conv2d_transpose padding="SAME"): total = e - s, the odd
element at the end. The weights have ONNX ConvTranspose's (and PyTorch's) layout
[C_in, filters/groups, *kernel]. Lowered to one ONNX `ConvTranspose` with explicit pads.
"""

from __future__ import annotations

import math
from typing import ClassVar

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, TensorType
from netc.compiler.ops.activations import lower_activation
from netc.compiler.ops.conv import conv_input_channels, conv_params
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.ops.spatial import axis_names, parse_pad, per_axis
from netc.compiler.shapes import numel


def transposed_dims(b, fname: str, x: TensorType, kernel, stride, dilation, pads, output_pad) -> tuple[D.Dim, ...]:
    """Spatial output dims; a located error when an axis would be empty."""
    n = len(kernel)
    names = axis_names(n)
    out: list[D.Dim] = []
    for i, size in enumerate(x.shape[2:]):
        extent = dilation[i] * (kernel[i] - 1) + 1
        grow = extent + output_pad[i] - pads[i] - pads[n + i]
        length = D.add(D.mul(D.sub(size, 1), stride[i]), grow)
        if isinstance(length, int) and length < 1:
            raise b.error(f"{fname}: axis {names[i]} of {x} would have {length} elements "
                          f"((L - 1)*stride - padding + extent + output_pad = ({size} - 1)*{stride[i]} "
                          f"- {pads[i] + pads[n + i]} + {extent} + {output_pad[i]})",
                          "use less padding or a larger kernel")
        out.append(length)
    return tuple(out)


class _ConvTranspose(OpDef):
    spatial: ClassVar[int]
    has_params = True
    float_dtypes = (DType.f32,)  # onnxruntime's CPU ConvTranspose kernel has no float64
    signature = (
        Arg("x", "tensor"),
        Arg("filters", "int", positive=True, doc="output channels"),
        Arg("kernel", "ints", positive=True, doc="an int or one per spatial axis"),
        Arg("stride", "ints", 1, positive=True),
        Arg("pad", "any", 0, choices=("valid", "same"),
            doc='cropped from the full output: "valid" (0), "same" (output = L*stride), an int, or a list'),
        Arg("output_pad", "ints", 0, doc="extra elements at the end of each axis (PyTorch's output_padding)"),
        Arg("dilation", "ints", 1, positive=True),
        Arg("groups", "int", 1, positive=True),
        Arg("bias", "bool", True),
        Arg("act", "act", None),
        Arg("weight_init", "init", Init("glorot_uniform")),
        Arg("bias_init", "init", Init("zeros")),
    )

    def build(self, b, x, filters, kernel, stride, pad, output_pad, dilation, groups, bias, act, weight_init,
              bias_init):
        n, name = self.spatial, self.name
        channels = conv_input_channels(b, name, x, n, filters, groups)
        kernel = per_axis(b, name, "kernel", kernel, n)
        stride = per_axis(b, name, "stride", stride, n)
        dilation = per_axis(b, name, "dilation", dilation, n)
        output_pad = per_axis(b, name, "output_pad", output_pad, n)
        names = axis_names(n)
        for i, (o, s, d) in enumerate(zip(output_pad, stride, dilation)):
            # Only then does output_pad pick between output lengths that all invert one conv.
            if o < 0 or (o >= s and o >= d):
                raise b.type_error(f"{name}: output_pad {o} on axis {names[i]} must be >= 0 and smaller than "
                                   f"the stride ({s}) or the dilation ({d})",
                                   "output_pad chooses among the lengths a strided convolution maps to one "
                                   "length; for more output, use a larger kernel or less padding")
        spec = parse_pad(b, name, pad, n, ("valid", "same"))
        if spec == "valid":
            pads = (0,) * (2 * n)
        elif spec == "same":
            if any(output_pad):
                raise b.type_error(f'{name}: pad="same" fixes the output at L*stride; output_pad must be 0')
            totals = [d * (k - 1) + 1 - s for k, s, d in zip(kernel, stride, dilation)]
            for i, t in enumerate(totals):
                if t < 0:
                    raise b.type_error(f'{name}: pad="same" needs a kernel extent of at least the stride on '
                                       f"axis {names[i]} (kernel {kernel[i]}, stride {stride[i]})",
                                       "use kernel >= stride, or explicit output_pad")
            pads = (*(t // 2 for t in totals), *(t - t // 2 for t in totals))
        else:
            pads = spec
        transposed_dims(b, name, x.type, kernel, stride, dilation, pads, output_pad)
        w, bv = conv_params(b, (channels, filters // groups, *kernel), channels, filters, groups, x.type.dtype, bias,
                            weight_init, bias_init)
        attrs = {"kernel": kernel, "stride": stride, "dilation": dilation, "pads": pads, "output_pad": output_pad,
                 "groups": groups, "act": act}
        return b.emit(name, [x, w, bv], attrs)[0]

    def infer(self, attrs, inputs, b):
        x, w, bias = inputs
        groups = attrs["groups"]
        if x.shape[1] != w.shape[0] or (bias is not None and bias.shape[0] != w.shape[1] * groups):
            raise b.error(f"{self.name}: input {x} does not match weight {w} with groups={groups}")
        dims = transposed_dims(b, self.name, x, attrs["kernel"], attrs["stride"], attrs["dilation"], attrs["pads"],
                               attrs["output_pad"])
        return [TensorType(x.dtype, (x.shape[0], w.shape[1] * groups, *dims))]

    def flops(self, op):
        x, w = op.inputs[0].type, op.inputs[1].type
        # Each input element meets filters/groups * prod(kernel) weights: 2 FLOPs each.
        return D.mul(numel(x.shape), 2 * math.prod(w.shape[1:]))

    def lower(self, ctx, op, inputs):
        x, w, bias = inputs
        a = op.attrs
        y = ctx.node("ConvTranspose", [x, w] + ([bias] if bias else []), group=a["groups"],
                     kernel_shape=list(a["kernel"]), strides=list(a["stride"]), dilations=list(a["dilation"]),
                     pads=list(a["pads"]), output_padding=list(a["output_pad"]))[0]
        return [lower_activation(ctx, a["act"], y)]


@register
class ConvTranspose1d(_ConvTranspose):
    name = "conv_transpose1d"
    spatial = 1
    doc = ("transposed convolution of x [N, C, L] with weight [C, filters/groups, k]: output length "
           "(L - 1)*stride - pads + dilation*(k - 1) + 1 + output_pad")
    cases = (
        Case("conv_transpose1d(x, 4, kernel=3)", {"x": "{f}[2, 3, 5]"}),
        Case("conv_transpose1d(x, 2, kernel=4, stride=2, pad=1)", {"x": "{f}[N, 3, T]"},
             note="2x upsampling, symbolic length"),
        Case("conv_transpose1d(x, 4, kernel=3, stride=3, pad=[1, 0], output_pad=2, dilation=2, groups=2)",
             {"x": "{f}[2, 4, T]"}, note="everything at once"),
        Case('conv_transpose1d(x, 3, kernel=5, stride=2, pad="same", act=relu)', {"x": "{f}[N, 2, T]"},
             note="same: output 2T"),
    )


@register
class ConvTranspose2d(_ConvTranspose):
    name = "conv_transpose2d"
    spatial = 2
    doc = ("transposed convolution of x [N, C, H, W] with weight [C, filters/groups, kh, kw] (DCGAN's "
           "upsampling layer)")
    cases = (
        Case("conv_transpose2d(x, 2, kernel=3)", {"x": "{f}[1, 2, 4, 4]"}),
        Case("conv_transpose2d(x, 3, kernel=4, stride=2, pad=1, bias=false)", {"x": "{f}[N, 4, H, W]"},
             note="DCGAN: doubles H and W"),
        Case("conv_transpose2d(x, 4, kernel=4, stride=1)", {"x": "{f}[N, 5, 1, 1]"}, note="DCGAN's first layer"),
        Case("conv_transpose2d(x, 4, kernel=[3, 2], stride=[2, 3], pad=[1, 0, 0, 1], output_pad=[1, 2], "
             "dilation=[1, 2], groups=2, act=tanh)", {"x": "{f}[2, 2, 3, H]"}, note="per-axis everything"),
        Case('conv_transpose2d(x, 2, kernel=3, stride=2, pad="same")', {"x": "{f}[N, 3, H, 5]"},
             note="same: output 2H x 10"),
    )
