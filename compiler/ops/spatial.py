"""Window arithmetic shared by convolution and pooling: per-axis arguments, padding and
output sizes over (possibly symbolic) spatial dims.

Output size of one spatial axis of length L, kernel k, dilation d, stride s and padding
(p_begin, p_end), with the kernel's extent e = d * (k - 1) + 1:

    floor mode: floor((L + p_begin + p_end - e) / s) + 1
    ceil mode:  ceil((L + p_begin + p_end - e) / s) + 1, less one when the last window
                would start past the input and its begin padding (PyTorch and onnxruntime
                both drop that window)
    "same":     ceil(L / s), padded with the extra element at the end (SAME_UPPER)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netc.compiler import dims as D
from netc.compiler.dims import Dim

if TYPE_CHECKING:
    from netc.compiler.builder import Builder
    from netc.compiler.ir import TensorType

PadSpec = str | tuple[int, ...]  # "valid" | "same" | "causal", or explicit (begins..., ends...)


@dataclass(frozen=True)
class Window:
    """A resolved sliding window over `len(kernel)` spatial axes.

    `pads` is in ONNX order (all begins, then all ends); None means "same" padding whose
    amounts depend on symbolic input sizes, left to the runtime (ONNX auto_pad=SAME_UPPER).
    """

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[int, ...] | None
    ceil: bool = False

    @property
    def extent(self) -> tuple[int, ...]:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    def onnx_attrs(self, dilations: bool = True) -> dict[str, Any]:
        """Attributes common to ONNX Conv / MaxPool / AveragePool / LpPool."""
        attrs: dict[str, Any] = {"kernel_shape": list(self.kernel), "strides": list(self.stride)}
        if dilations:
            attrs["dilations"] = list(self.dilation)
        if self.pads is None:
            attrs["auto_pad"] = "SAME_UPPER"
        else:
            attrs["pads"] = list(self.pads)
        return attrs


def axis_names(spatial: int) -> tuple[str, ...]:
    return ("L",) if spatial == 1 else ("H", "W") if spatial == 2 else tuple(f"D{i}" for i in range(spatial))


def layout(spatial: int) -> str:
    return "[" + ", ".join(("N", "C", *axis_names(spatial))) + "]"


def per_axis(b: Builder, fname: str, arg: str, values: int | Sequence[int], spatial: int) -> tuple[int, ...]:
    """An int-or-list argument (already checked to be positive ints) as one value per axis."""
    values = (values,) if isinstance(values, int) else tuple(values)
    if len(values) == 1:
        return values * spatial
    if len(values) != spatial:
        raise b.type_error(f"{fname}: '{arg}' needs 1 or {spatial} values (one per spatial axis); "
                           f"got {len(values)}: {list(values)}")
    return values


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, bool):
        return f"bool {str(value).lower()}"
    if isinstance(value, list | tuple):
        return f"list {list(value)}" if all(isinstance(v, int) for v in value) else f"list of {len(value)}"
    if isinstance(value, D.Sym):
        return f"symbolic dim {value}"
    return type(value).__name__ if not isinstance(value, int | float) else f"{type(value).__name__} {value}"


def parse_pad(b: Builder, fname: str, pad: Any, spatial: int, words: Sequence[str]) -> PadSpec:
    """Check a `pad=` argument: one of `words`, an int (symmetric), a list of one int per
    axis (symmetric per axis) or of 2 per axis (ONNX order: all begins, then all ends)."""
    quoted = ", ".join(f'"{w}"' for w in words)
    expected = f"{quoted}, a non-negative integer, or a list of {spatial} or {2 * spatial} of them"
    if isinstance(pad, str):
        if pad not in words:
            hint = 'pad="causal" is for conv1d only' if pad == "causal" else f"pad is {expected}"
            raise b.type_error(f'{fname}: unknown padding "{pad}"', hint)
        return pad
    if isinstance(pad, int) and not isinstance(pad, bool):
        items: list[Any] = [pad]
    elif isinstance(pad, list | tuple):
        items = list(pad)
    else:
        raise b.type_error(f"{fname}: 'pad' expects {expected}; got {_describe(pad)}")
    if not items or not all(isinstance(p, int) and not isinstance(p, bool) for p in items):
        raise b.type_error(f"{fname}: 'pad' expects {expected}; got {_describe(pad)}")
    if any(p < 0 for p in items):
        raise b.type_error(f"{fname}: padding must not be negative; got {_describe(pad)}")
    if len(items) == 1:
        return tuple(items) * (2 * spatial)
    if len(items) == spatial:
        return tuple(items) * 2
    if len(items) == 2 * spatial:
        return tuple(items)
    raise b.type_error(f"{fname}: 'pad' needs 1, {spatial} or {2 * spatial} values; got {len(items)}",
                       f"a list of {2 * spatial} gives all begin paddings, then all end paddings "
                       "(ONNX order)" if spatial > 1 else "[begin, end]")


def resolve_pads(spec: PadSpec, in_spatial: Sequence[Dim], kernel: Sequence[int], stride: Sequence[int],
                 dilation: Sequence[int]) -> tuple[int, ...] | None:
    """Explicit (begins..., ends...) for `spec`, or None for "same" that needs run-time sizes."""
    n = len(kernel)
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if spec == "valid":
        return (0,) * (2 * n)
    if spec == "causal":
        return (*(e - 1 for e in extent), *(0,) * n)
    if spec == "same":
        begins, ends = [], []
        for size, e, s in zip(in_spatial, extent, stride):
            if isinstance(size, int):
                total = max((-(-size // s) - 1) * s + e - size, 0)
            elif s == 1:
                total = e - 1
            else:
                return None
            begins.append(total // 2)
            ends.append(total - total // 2)
        return (*begins, *ends)
    assert isinstance(spec, tuple)
    return spec


def _ceil_drops(size: int, total: int, stride: int, begin: int) -> int:
    """Output length in ceil mode, dropping a last window that starts past the input."""
    out = -(-total // stride) + 1
    if (out - 1) * stride >= size + begin:
        out -= 1
    return out


def output_dims(b: Builder, fname: str, x: TensorType, window: Window) -> tuple[Dim, ...]:
    """Spatial output dims of `window` sliding over `x` ([N, C, *spatial]); shape errors for a
    kernel that does not fit its padded input."""
    spatial = x.shape[2:]
    names = axis_names(len(spatial))
    if window.pads is None:  # "same"
        return tuple(D.ceildiv(size, s) for size, s in zip(spatial, window.stride))
    n = len(spatial)
    out: list[Dim] = []
    for i, (size, e, s) in enumerate(zip(spatial, window.extent, window.stride)):
        begin, end = window.pads[i], window.pads[n + i]
        total = D.sub(D.add(size, begin + end), e)  # padded length minus the kernel extent
        if isinstance(total, int):
            assert isinstance(size, int)
            if total < 0:
                k, d = window.kernel[i], window.dilation[i]
                what = f"{e} (kernel {k}, dilation {d})" if d > 1 else f"{e}"
                raise b.error(f"{fname}: the kernel extent {what} on axis {names[i]} is larger than the "
                              f"padded input ({size} + {begin + end} padding) of {x}",
                              'use a smaller kernel or stride, or pad the input (pad="same")')
            out.append(_ceil_drops(size, total, s, begin) if window.ceil else total // s + 1)
        elif window.ceil and s > 1:
            if s + end > e:  # whether the last window is dropped depends on the size
                raise b.error(f"{fname}: with ceil=true, the output length of the symbolic axis "
                              f"{names[i]} ({size}) depends on ({size}) mod {s}",
                              f"give {sorted(D.symbols(size))[0]} a value with `--set`, or use "
                              "ceil=false or a kernel of at least stride + end padding")
            out.append(D.floordiv(D.add(total, 2 * s - 1), s))  # ceil(total / s) + 1
        else:
            out.append(D.floordiv(D.add(total, s), s))  # floor(total / s) + 1, in the form T//2
    return tuple(out)


def ceil_effects(x: TensorType, window: Window) -> tuple[tuple[bool, bool], ...]:
    """Per spatial axis, in ceil mode: (whether it changes the output length from floor mode,
    whether it drops a last window that would start past the input).

    onnxruntime drops that window, as PyTorch does, but onnx's shape inference (1.23) does
    not know the rule; where it applies the ceil length equals the floor length with the
    same windows, so floor mode is the exact, agreed-on form for that axis."""
    if window.pads is None:
        return ((False, False),) * len(window.kernel)
    n = len(window.kernel)
    effects = []
    for i, (size, e, s) in enumerate(zip(x.shape[2:], window.extent, window.stride)):
        begin, end = window.pads[i], window.pads[n + i]
        total = D.sub(D.add(size, begin + end), e)
        if not isinstance(total, int) or not isinstance(size, int):
            effects.append((s > 1, False))  # output_dims rejects the symbolic cases that drop
            continue
        length = _ceil_drops(size, total, s, begin)
        effects.append((length != total // s + 1, length != -(-total // s) + 1))
    return tuple(effects)
