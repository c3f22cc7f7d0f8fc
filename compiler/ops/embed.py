"""Integer ids to vectors: learned embeddings (lookup tables) and one-hot encodings."""

from __future__ import annotations

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, TensorType, Value
from netc.compiler.ops.registry import Arg, Case, OpDef, register

_ID_DTYPES = (DType.i32, DType.i64)


def _check_ids(b, name: str, ids: TensorType) -> None:
    if ids.dtype not in _ID_DTYPES:
        raise b.type_error(f"{name} needs integer ids (i64 or i32); got {ids}",
                           "convert with cast(ids, i64)" if ids.dtype.is_float or ids.dtype.is_int else "")


@register
class Embed(OpDef):
    name = "embed"
    doc = "lookup table: ids [...] -> weight[ids] [..., dim]; weight is [vocab, dim]"
    has_params = True
    step_polymorphic = True
    signature = (
        Arg("ids", "tensor"),
        Arg("vocab", "int", positive=True),
        Arg("dim", "int", positive=True),
        Arg("weight_init", "init", Init("normal", (("std", 1.0),))),
        Arg("dtype", "dtype", DType.f32),
    )
    cases = (
        Case("embed(ids, 7, 4, dtype={f})", {"ids": "i64[3, 5]"}, int_high=7),
        Case("ids -> embed(10, 3, dtype={f}) -> flatten", {"ids": "i64[N, 4]"}, int_high=10,
             note="NPLM input layer"),
        Case("embed(ids, 5, 6, weight_init=uniform(low=-1, high=1), dtype={f})", {"ids": "i32[N]"},
             note="i32 ids"),
        Case("embed(ids, 3, 2, dtype={f})", {"ids": "i64[T, N, 2]"}, int_high=3, note="rank 3 ids"),
    )

    def build(self, b, ids, vocab, dim, weight_init, dtype):
        _check_ids(b, "embed", ids.type)
        if not dtype.is_float or dtype is DType.bf16:
            raise b.type_error(f"embed: the table's dtype must be f16, f32 or f64; got {dtype.value}")
        weight = b.param("weight", (vocab, dim), dtype, weight_init, fan_in=vocab, fan_out=dim)
        return b.emit(self.name, [ids, weight], {})[0]

    def infer(self, attrs, inputs, b):
        ids, weight = inputs
        _check_ids(b, "embed", ids)
        return [TensorType(weight.dtype, (*ids.shape, weight.shape[1]))]

    def hoistable(self, op, varying):
        return bool(varying[0]) and not varying[1]

    def lower(self, ctx, op, inputs):
        ids, weight = inputs
        return ctx.node("Gather", [weight, ids], axis=0)


@register
class OneHot(OpDef):
    name = "one_hot"
    doc = ("ids [...] -> [..., depth] with 1 at each id and 0 elsewhere (ids outside [-depth, depth) give all "
           "zeros; negative ids count from the end). depth: an int, a symbolic dim, or an integer scalar "
           "tensor (then the new axis is a run-time dim `<op>.depth`)")
    signature = (
        Arg("ids", "tensor"),
        Arg("depth", "any"),
        Arg("dtype", "dtype", DType.f32),
        Arg("axis", "int", -1),
    )
    step_polymorphic = True  # the axis is kept counted from the end
    cases = (
        Case("one_hot(ids, 5, dtype={f})", {"ids": "i64[3, 4]"}),
        Case("ids -> one_hot(3, dtype={f})", {"ids": "i32[N]"}, int_high=5, note="out-of-range ids"),
        Case("one_hot(ids - 2, 4, dtype={f})", {"ids": "i64[N, 3]"}, int_high=7, note="negative ids"),
        Case("one_hot(ids, 4, axis=0, dtype={f})", {"ids": "i64[2, N]"}, note="new leading axis"),
        Case("one_hot(ids, 6, dtype=i64)", {"ids": "i64[5]"}, int_high=6, note="integer output"),
        Case("one_hot(ids, 3, dtype=bool)", {"ids": "i32[2, 3]"}, int_high=3, note="boolean output"),
        Case("one_hot(ids, dim(x, 1), dtype={f})", {"ids": "i64[N]", "x": "{f}[N, T]"}, int_high=2,
             note="symbolic depth"),
        Case("one_hot(ids, max(ids) + 1, dtype={f})", {"ids": "i64[N, 3]"}, note="run-time depth"),
        Case("one_hot(ids, k + 1, axis=0)", {"ids": "i32[4]", "k": "i32[]"}, note="run-time depth from an input"),
    )

    def build(self, b, ids, depth, dtype, axis):
        _check_ids(b, "one_hot", ids.type)
        if dtype is DType.bf16:
            raise b.type_error("one_hot to bf16 is not supported (the reference interpreter has no bfloat16)")
        rank = ids.type.rank + 1
        axis = b.axis(axis, rank, "one_hot: axis") - rank
        inputs = [ids]
        if isinstance(depth, Value):
            # A depth known only at run time: the new axis is a run-time dim named after the op.
            if depth.type.dtype not in _ID_DTYPES or depth.type.rank != 0:
                raise b.type_error(f"one_hot: a tensor depth must be an integer scalar (i64[] or i32[]); "
                                   f"got {depth.type}")
            if b.parent is not None:
                raise b.error("one_hot with a run-time depth inside a recurrence step: the depth would change "
                              "from step to step", "compute it outside the step")
            inputs.append(depth)
            depth = f"{b.label}.depth"
        elif not D.is_dim(depth):
            raise b.type_error(f"one_hot: 'depth' expects an integer, a symbolic dim or an integer scalar "
                               f"tensor; got {depth!r}")
        elif isinstance(depth, int) and depth <= 0:
            raise b.type_error(f"one_hot: 'depth' must be positive; got {depth}")
        return b.emit(self.name, inputs, {"depth": depth, "dtype": dtype, "axis": axis})[0]

    def infer(self, attrs, inputs, b):
        ids = inputs[0]
        _check_ids(b, "one_hot", ids)
        depth = attrs["depth"]
        shape = list(ids.shape)
        shape.insert(b.axis(attrs["axis"], ids.rank + 1, "one_hot: axis"),
                     D.symbol(depth) if isinstance(depth, str) else depth)
        return [TensorType(attrs["dtype"], tuple(shape))]

    def hoistable(self, op, varying):
        return bool(varying[0])

    def lower(self, ctx, op, inputs):
        ids = inputs[0]
        dtype = op.attrs["dtype"]
        # onnxruntime implements OneHot for few type combinations; (int64 ids, float values,
        # int64 depth) is one of them. Other output dtypes are a Cast of that.
        if op.inputs[0].type.dtype is not DType.i64:
            ids = ctx.node("Cast", [ids], to=DType.i64.onnx)[0]
        depth = op.attrs["depth"]  # a symbolic depth is its run-time value
        if isinstance(depth, str):
            depth_t = inputs[1]
            if op.inputs[1].type.dtype is not DType.i64:
                depth_t = ctx.node("Cast", [depth_t], to=DType.i64.onnx)[0]
        elif isinstance(depth, int):
            depth_t = ctx.const(np.asarray(depth, dtype=np.int64), "depth")
        else:
            depth_t = ctx.dim_tensor(depth)
        values = ctx.const(np.asarray([0, 1], dtype=np.float32), "off_on")
        y = ctx.node("OneHot", [ids, depth_t, values], axis=op.attrs["axis"])
        if isinstance(depth, str):
            ctx.define_symbol(depth, y[0], op.attrs["axis"] % op.outputs[0].type.rank)
        if dtype is not DType.f32:
            y = ctx.node("Cast", y, to=dtype.onnx)
        return y
