"""Shape manipulation: flatten, reshape, transpose, concat, split, squeeze, unsqueeze and cast.

None of these computes anything; each rearranges (or converts) elements. Shape rules work
on symbolic dims: a rule that would need to know that two different symbolic expressions
are equal fails with an error instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netc.compiler import dims as D
from netc.compiler.ir import DType, TensorType, Value
from netc.compiler.ops.registry import Arg, Case, OpDef, register
from netc.compiler.shapes import numel, replace_dim, same_dim, tensor_axis


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _flat_args(values: tuple) -> list:
    """`f(a, b, c)` and `f([a, b, c])` mean the same."""
    if len(values) == 1 and isinstance(values[0], list | tuple):
        return list(values[0])
    return list(values)


def _atom_dim(atom: D.Atom) -> D.Dim:
    return D.symbol(atom) if isinstance(atom, str) else D.Sym((((atom,), 1),))


def divide_dims(a: D.Dim, b: D.Dim) -> D.Dim | None:
    """`a / b` when it is provably whole (b an int or a single monomial), else None."""
    if isinstance(b, int):
        return D.exact_div(a, b) if b > 0 else None
    if a == b:
        return 1
    if len(b.terms) != 1 or isinstance(a, int):
        return None
    mono_b, coeff_b = b.terms[0]
    if coeff_b <= 0:
        return None
    quotient: D.Dim = 0
    for mono, coeff in a.terms:
        rest = list(mono)
        for atom in mono_b:
            if atom not in rest:
                return None
            rest.remove(atom)
        if coeff % coeff_b:
            return None
        term: D.Dim = coeff // coeff_b
        for atom in rest:
            term = D.mul(term, _atom_dim(atom))
        quotient = D.add(quotient, term)
    return quotient if D.mul(quotient, b) == a else None


def reshape_spec(in_shape: Sequence[D.Dim], out_shape: Sequence[D.Dim]) -> list[D.Dim]:
    """The ONNX Reshape target for `in_shape -> out_shape`, as static as possible: a
    symbolic dim that stays at its position becomes 0 (copy), the first other symbolic
    dim becomes -1 (inferred); only further symbolic dims must be computed at run time."""
    spec: list[D.Dim] = []
    for i, d in enumerate(out_shape):
        if not isinstance(d, int) and i < len(in_shape) and same_dim(in_shape[i], d):
            spec.append(0)
        else:
            spec.append(d)
    symbolic = [i for i, d in enumerate(spec) if not isinstance(d, int)]
    if symbolic:
        spec[symbolic[0]] = -1
    return spec


def lower_reshape(ctx, x: str, in_shape: Sequence[D.Dim], out_shape: Sequence[D.Dim]) -> str:
    return ctx.node("Reshape", [x, ctx.shape_tensor(reshape_spec(in_shape, out_shape))])[0]


@register
class Flatten(OpDef):
    name = "flatten"
    doc = "[d0, ..., dn] -> [d0*...*d(axis-1), d(axis)*...*dn]: feature maps to vectors"
    signature = (Arg("x", "tensor"), Arg("axis", "int", 1))
    cases = (
        Case("flatten(x)", {"x": "{f}[N, 2, 3, 4]"}),
        Case("x -> flatten(axis=2)", {"x": "{f}[2, 3, 4, 5]"}),
        Case("flatten(x, axis=0)", {"x": "{f}[3, 4]"}, note="[1, numel]"),
        Case("flatten(x, -1)", {"x": "{f}[N, T, 3]"}, note="negative axis, symbolic product"),
        Case("flatten(x, axis=2)", {"x": "i64[3, 4]"}, note="axis = rank: [numel, 1]"),
    )

    def build(self, b, x, axis):
        if x.type.rank < 1:
            raise b.error(f"flatten needs a tensor of rank >= 1; got {x.type}")
        rank = x.type.rank
        if not -rank <= axis <= rank:
            raise b.error(f"flatten: axis {axis} is out of range for {x.type} (axes -{rank}..{rank})")
        return b.emit(self.name, [x], {"axis": axis + rank if axis < 0 else axis})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        axis = attrs["axis"]
        return [TensorType(x.dtype, (numel(x.shape[:axis]), numel(x.shape[axis:])))]

    def lower(self, ctx, op, inputs):
        return ctx.node("Flatten", inputs, axis=op.attrs["axis"])


@register
class Reshape(OpDef):
    name = "reshape"
    doc = "the same elements in a new shape; dims are ints or symbolic dims, one may be -1 (inferred)"
    signature = (Arg("x", "tensor"), Arg("dims", "any", variadic=True))
    cases = (
        Case("reshape(x, 4, 6)", {"x": "{f}[2, 3, 4]"}),
        Case("x -> reshape(N, -1)", {"x": "{f}[N, 2, 3, 4]"}, note="-1 with a symbolic batch"),
        Case("reshape(x, N, 1, 2, 6)", {"x": "{f}[N, 12]"}, note="symbolic dim copied in place"),
        Case("reshape(x, [-1, 3])", {"x": "{f}[N, T, 6]"}, note="inferred dim is 2*N*T"),
        Case("reshape(x, T, N * 2)", {"x": "{f}[N, T, 2]"}, note="two symbolic dims move"),
        Case("reshape(x, -1)", {"x": "i32[2, 5]"}, note="integer tensor"),
        Case("reshape(x, shape(y))", {"x": "{f}[N, 6]", "y": "{f}[N, 2, 3]"}, note="shape of another tensor"),
    )

    def build(self, b, x, dims):
        dims = _flat_args(dims)
        if not dims:
            raise b.error("reshape needs the new dims, e.g. reshape(x, N, -1)")
        for d in dims:
            if not D.is_dim(d):
                raise b.type_error(f"reshape: dims must be integers or symbolic dims; got {d!r}")
            if _is_int(d) and d <= 0 and d != -1:
                raise b.error(f"reshape: dim {d} is not allowed; dims are positive, or -1 for one inferred dim",
                              "to keep a dim, name it: reshape(x, N, -1)")
        if sum(1 for d in dims if d == -1) > 1:
            raise b.error(f"reshape: at most one dim may be -1; got {_dims_str(dims)}")
        total = numel(x.type.shape)
        known = numel([d for d in dims if d != -1])
        if -1 in dims:
            inferred = divide_dims(total, known)
            if inferred is None:
                raise b.error(f"reshape: cannot infer the -1 in {_dims_str(dims)}: {x.type} has {total} elements, "
                              f"which is not known to be a multiple of {known}")
            shape = tuple(inferred if d == -1 else d for d in dims)
        else:
            shape = tuple(dims)
            diff = D.sub(total, known)
            if diff != 0:
                how = "" if isinstance(diff, int) else " (not provably equal)"
                raise b.error(f"reshape: {x.type} has {total} elements, {_dims_str(dims)} has {known}{how}",
                              "use -1 for one dim to let netc infer it")
        return b.emit(self.name, [x], {"shape": shape})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        shape = tuple(attrs["shape"])
        if D.sub(numel(x.shape), numel(shape)) != 0:
            raise b.error(f"reshape: {x} and {_dims_str(shape)} have different sizes")
        return [TensorType(x.dtype, shape)]

    def lower(self, ctx, op, inputs):
        return [lower_reshape(ctx, inputs[0], op.inputs[0].type.shape, op.attrs["shape"])]


def _dims_str(dims: Sequence[D.Dim]) -> str:
    return D.shape_str(tuple(dims))


@register
class Transpose(OpDef):
    name = "transpose"
    doc = "permute axes: output axis i is input axis perm[i]; no perm reverses the axes"
    signature = (Arg("x", "tensor"), Arg("perm", "any", variadic=True))
    cases = (
        Case("transpose(x)", {"x": "{f}[3, 4]"}),
        Case("x -> transpose(1, 0, 2)", {"x": "{f}[T, N, 5]"}, note="time-major to batch-major"),
        Case("transpose(x, [0, 2, 3, 1])", {"x": "{f}[N, 2, 3, 4]"}, note="NCHW -> NHWC"),
        Case("transpose(x, -1, 0, 1)", {"x": "i64[2, 3, 4]"}, note="negative axes"),
    )

    def build(self, b, x, perm):
        rank = x.type.rank
        perm = _flat_args(perm)
        if not perm:
            perm = list(range(rank))[::-1]
        if not all(_is_int(p) for p in perm):
            raise b.type_error(f"transpose: the permutation must be integers; got {perm}")
        if len(perm) != rank:
            raise b.error(f"transpose: {x.type} has {rank} axes, the permutation {list(perm)} has {len(perm)}")
        axes = [b.axis(p, rank, "transpose: axis") for p in perm]
        if sorted(axes) != list(range(rank)):
            raise b.error(f"transpose: {list(perm)} is not a permutation of the axes of {x.type}",
                          "each axis must appear exactly once")
        return b.emit(self.name, [x], {"perm": tuple(axes)})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        return [TensorType(x.dtype, tuple(x.shape[p] for p in attrs["perm"]))]

    def lower(self, ctx, op, inputs):
        return ctx.node("Transpose", inputs, perm=list(op.attrs["perm"]))


@register
class Concat(OpDef):
    name = "concat"
    doc = "join tensors along an axis; the other dims must match"
    signature = (Arg("xs", "any", variadic=True), Arg("axis", "int", -1))
    step_polymorphic = True
    cases = (
        Case("concat(x, y)", {"x": "{f}[3, 4]", "y": "{f}[3, 2]"}),
        Case("x -> concat(y, x, axis=0)", {"x": "{f}[2, N]", "y": "{f}[3, N]"}, note="pipeline, symbolic"),
        Case("concat([x, y, x], axis=1)", {"x": "{f}[N, 2, 5]", "y": "{f}[N, T, 5]"}, note="list, symbolic axis"),
        Case("concat(x, y, axis=-1)", {"x": "i64[2, 3]", "y": "i64[2, 1]"}),
    )

    def build(self, b, xs, axis):
        tensors = _flat_args(xs)
        if not tensors:
            raise b.error("concat needs at least one tensor")
        for t in tensors:
            if not isinstance(t, Value):
                raise b.type_error(f"concat joins tensors; got {_describe(t)}")
        rank = tensors[0].type.rank
        if rank == 0:
            raise b.error(f"concat needs tensors of rank >= 1; got {tensors[0].type}", "unsqueeze scalars first")
        # Kept counted from the end, so the op means the same with an extra leading axis.
        axis = b.axis(axis, rank, "concat: axis") - rank
        return b.emit(self.name, tensors, {"axis": axis})[0]

    def infer(self, attrs, inputs, b):
        first = inputs[0]
        axis = b.axis(attrs["axis"], first.rank, "concat: axis")
        total: D.Dim = 0
        for i, t in enumerate(inputs):
            if t.dtype != first.dtype:
                raise b.type_error(f"concat: dtypes differ: {first} and {t} (tensor {i + 1})",
                                   "convert one with cast(x, dtype)")
            if t.rank != first.rank:
                raise b.error(f"concat: ranks differ: {first} and {t} (tensor {i + 1})")
            for a, (d0, d) in enumerate(zip(first.shape, t.shape)):
                if a != axis and not same_dim(d0, d):
                    raise b.error(f"concat along axis {axis}: {first} and {t} differ in axis {a} ({d0} vs {d})",
                                  "every axis except the concatenation axis must match")
            total = D.add(total, t.shape[axis])
        return [TensorType(first.dtype, replace_dim(first.shape, axis, total))]

    def hoistable(self, op, varying):
        # Every piece needs the new leading axis: a step-invariant piece is not repeated.
        return all(varying)

    def lower(self, ctx, op, inputs):
        return ctx.node("Concat", inputs, axis=op.attrs["axis"])


def _describe(v: Any) -> str:
    from netc.compiler.values import describe

    return describe(v)


@register
class Split(OpDef):
    name = "split"
    doc = "cut a tensor along an axis into `parts` equal pieces or pieces of the listed sizes; returns a tuple"
    signature = (Arg("x", "tensor"), Arg("parts", "any"), Arg("axis", "int", -1))
    cases = (
        Case("a, b = split(x, 2)\noutput a\noutput b", {"x": "{f}[3, 4]"}),
        Case("a, b, c = split(x, [1, 3, 2], axis=1)\noutput a\noutput b\noutput c", {"x": "{f}[N, 6, 2]"},
             note="sizes"),
        Case("a, b = concat(x, y, axis=0) -> split(2, axis=0)\noutput a\noutput b",
             {"x": "{f}[N, 3]", "y": "{f}[N, 3]"}, note="symbolic halves"),
        Case("a, b = concat(x, y, x, axis=0) -> split([N, 2 * N], axis=0)\noutput a\noutput b",
             {"x": "{f}[N, 2]", "y": "{f}[N, 2]"}, note="symbolic sizes"),
        Case("p = split(x, 3)\noutput a = p[0]\noutput c = p[2]", {"x": "i64[2, 9]"}, note="integer tensor"),
    )

    def build(self, b, x, parts, axis):
        axis = tensor_axis(b, "split", x, axis)
        dim = x.type.shape[axis]
        if _is_int(parts):
            if parts <= 0:
                raise b.error(f"split: parts must be positive; got {parts}")
            size = divide_dims(dim, parts)
            if size is None:
                raise b.error(f"split: axis {axis} of {x.type} ({dim}) does not divide into {parts} equal parts",
                              "give the sizes as a list: split(x, [a, b], axis=...)")
            sizes: tuple[D.Dim, ...] = (size,) * parts
        elif isinstance(parts, list | tuple):
            if not parts or not all(D.is_dim(s) for s in parts):
                raise b.type_error(f"split: sizes must be a non-empty list of dims; got {list(parts)}")
            if any(_is_int(s) and s <= 0 for s in parts):
                raise b.error(f"split: sizes must be positive; got {list(parts)}")
            total: D.Dim = 0
            for s in parts:
                total = D.add(total, s)
            if total != dim:
                raise b.error(f"split: sizes {_dims_str(parts)} add up to {total}, "
                              f"but axis {axis} of {x.type} is {dim}")
            sizes = tuple(parts)
        else:
            raise b.type_error(f"split: 'parts' expects a number of equal parts or a list of sizes; "
                               f"got {_describe(parts)}")
        return tuple(b.emit(self.name, [x], {"sizes": sizes, "axis": axis}))

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        axis, sizes = attrs["axis"], attrs["sizes"]
        return [TensorType(x.dtype, replace_dim(x.shape, axis, s)) for s in sizes]

    def lower(self, ctx, op, inputs):
        sizes, axis = op.attrs["sizes"], op.attrs["axis"]
        n = len(sizes)
        if all(isinstance(s, int) for s in sizes):
            return ctx.node("Split", [inputs[0], ctx.ints(list(sizes))], n_out=n, axis=axis)
        if all(s == sizes[0] for s in sizes):
            return ctx.node("Split", [inputs[0]], n_out=n, axis=axis, num_outputs=n)
        return ctx.node("Split", [inputs[0], ctx.shape_tensor(sizes)], n_out=n, axis=axis)


@register
class Squeeze(OpDef):
    name = "squeeze"
    doc = "drop axes of size 1 (the given ones, or every static 1)"
    signature = (Arg("x", "tensor"), Arg("axes", "any", variadic=True))
    cases = (
        Case("squeeze(x)", {"x": "{f}[1, 3, 1, 4]"}),
        Case("x -> squeeze(1)", {"x": "{f}[N, 1, 5]"}),
        Case("squeeze(x, 0, -1)", {"x": "{f}[1, N, 1]"}, note="two axes, negative"),
        Case("squeeze(x, [2])", {"x": "i32[2, 3, 1]"}),
        Case("squeeze(x)", {"x": "{f}[1]"}, note="to a scalar"),
    )

    def build(self, b, x, axes):
        rank = x.type.rank
        axes = _flat_args(axes)
        if not all(_is_int(a) for a in axes):
            raise b.type_error(f"squeeze: axes must be integers; got {axes}")
        if axes:
            norm = sorted({b.axis(a, rank, "squeeze: axis") for a in axes})
            if len(norm) != len(axes):
                raise b.error(f"squeeze: axis repeated in {axes}")
        else:
            norm = [i for i, d in enumerate(x.type.shape) if d == 1]
        return b.emit(self.name, [x], {"axes": tuple(norm)})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        for a in attrs["axes"]:
            d = x.shape[a]
            if d != 1:
                what = f"the symbolic dim {d} is not known to be 1" if isinstance(d, D.Sym) else f"it has size {d}"
                raise b.error(f"squeeze: cannot drop axis {a} of {x}: {what}")
        shape = tuple(d for i, d in enumerate(x.shape) if i not in attrs["axes"])
        return [TensorType(x.dtype, shape)]

    def lower(self, ctx, op, inputs):
        axes = list(op.attrs["axes"])
        if not axes:
            return ctx.node("Identity", inputs)
        return ctx.node("Squeeze", [inputs[0], ctx.ints(axes)])


@register
class Unsqueeze(OpDef):
    name = "unsqueeze"
    doc = "insert axes of size 1; the axes are positions in the output"
    signature = (Arg("x", "tensor"), Arg("axes", "any", variadic=True))
    cases = (
        Case("unsqueeze(x, 0)", {"x": "{f}[3, 4]"}),
        Case("x -> unsqueeze(-1)", {"x": "{f}[N, 4]"}),
        Case("unsqueeze(x, 1, 3)", {"x": "{f}[N, 2]"}, note="two axes"),
        Case("unsqueeze(x, [0, -1])", {"x": "i64[5]"}),
    )

    def build(self, b, x, axes):
        axes = _flat_args(axes)
        if not axes:
            raise b.error("unsqueeze needs at least one axis, e.g. unsqueeze(x, 0)")
        if not all(_is_int(a) for a in axes):
            raise b.type_error(f"unsqueeze: axes must be integers; got {axes}")
        out_rank = x.type.rank + len(axes)
        norm = sorted({b.axis(a, out_rank, "unsqueeze: axis") for a in axes})
        if len(norm) != len(axes):
            raise b.error(f"unsqueeze: axis repeated in {axes}")
        return b.emit(self.name, [x], {"axes": tuple(norm)})[0]

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        rest = iter(x.shape)
        out_rank = x.rank + len(attrs["axes"])
        shape = tuple(1 if i in attrs["axes"] else next(rest) for i in range(out_rank))
        return [TensorType(x.dtype, shape)]

    def lower(self, ctx, op, inputs):
        return ctx.node("Unsqueeze", [inputs[0], ctx.ints(list(op.attrs["axes"]))])


@register
class Cast(OpDef):
    name = "cast"
    doc = "convert to another dtype (floats to integers truncate toward zero; nonzero to bool is true)"
    signature = (Arg("x", "tensor"), Arg("dtype", "dtype"))
    step_polymorphic = True
    cases = (
        Case("cast(x, i64)", {"x": "{f}[3, 4]"}),
        Case("x -> cast(i32)", {"x": "{f}[N, 5]"}),
        Case("cast(x, {f}) * 0.5", {"x": "i64[N, 3]"}, note="ids to floats"),
        Case("cast(x, f16)", {"x": "{f}[2, 5]"}),
        Case("cast(x, f64)", {"x": "{f}[4]"}),
        Case("cast(x, bool)", {"x": "i32[3, 3]"}, int_high=3),
        Case("cast(cast(x, bool), {f})", {"x": "{f}[6]"}),
    )

    def infer(self, attrs, inputs, b):
        (x,) = inputs
        if attrs["dtype"] is DType.bf16:
            raise b.type_error("cast to bf16 is not supported (the reference interpreter has no bfloat16)")
        return [TensorType(attrs["dtype"], x.shape)]

    def lower(self, ctx, op, inputs):
        if op.attrs["dtype"] == op.inputs[0].type.dtype:
            return ctx.node("Identity", inputs)
        return ctx.node("Cast", inputs, to=op.attrs["dtype"].onnx)
