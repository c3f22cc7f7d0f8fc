"""A `Scan` that also runs on an empty sequence.

onnxruntime rejects a `Scan` whose scan inputs have 0 steps ("Invalid dim0_offset of 0").
When the number of steps is only known at run time, the loop goes into the else branch of
an `If` on `T == 0`, whose then branch gives what a loop of no steps computes: empty
stacked outputs [0, ...] and, as final states, the initial states (`recur`) or zeros
(the standard cells, as their native ops and the reference define a sequence that never
ran). A static T needs no guard.

The callers put everything that prepares the loop's weights into the else branch too
(`emit` gets the branch's context): onnxruntime prepacks the weights of a Gemm inside a
Scan body only when they are constants at most one subgraph up. With the weights at the
top level and only the Scan in the branch, they were not prepacked and the GRU (Scan)
lowering ran 13-22% slower (T=100, N=32, H=256, 2 threads); with the preparation in the
branch (`recur`: a Reshape of each parameter to its own shape, folded there), onnxruntime
folds it into constants there and the guarded models run as the unguarded ones did
(guarded / unguarded 1.00-1.03, `benchmarks/scan_guard.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from onnx import TensorProto, numpy_helper

from netc.compiler import dims as D
from netc.compiler.ir import TensorType


def guard_empty(ctx, steps: D.Dim, seq: str, out_types: Sequence[TensorType], emit: Callable[..., list[str]],
                empty: Callable[..., list[str]]) -> list[str]:
    """`emit(ctx)`'s outputs; when `steps` (the length of axis 0 of ONNX value `seq`) is
    symbolic, an `If` that takes `empty(branch)`'s outputs instead when it is 0."""
    if isinstance(steps, int):
        return emit(ctx)
    loop = _branch(ctx)
    outs = emit(loop)
    else_graph = loop.subgraph("nonempty", [], [loop.region_output(o, t) for o, t in zip(outs, out_types)])
    none = _branch(ctx)
    results = empty(none)
    then_graph = none.subgraph("empty", [], [none.region_output(o, t) for o, t in zip(results, out_types)])
    length = ctx.node("Shape", [seq], start=0, end=1)[0]
    is_empty = ctx.node("Equal", [length, ctx.ints([0])])[0]
    return ctx.node("If", [is_empty], n_out=len(out_types), then_branch=then_graph, else_branch=else_graph)


def empty_of(ctx, t: TensorType) -> str:
    """Zeros of type `t` whose leading (time) axis has length 0."""
    shape = ctx.node("Concat", [ctx.ints([0]), ctx.shape_tensor(list(t.shape[1:]))], axis=0)[0]
    return _zeros(ctx, shape, t.dtype.numpy)


def zeros_of(ctx, t: TensorType) -> str:
    return _zeros(ctx, ctx.shape_tensor(list(t.shape)), t.dtype.numpy)


def _branch(ctx):
    branch = ctx.child()
    branch._op = ctx._op  # nodes named after the op being lowered
    return branch


def _zeros(ctx, shape: str, dtype: np.dtype) -> str:
    value = numpy_helper.from_array(np.zeros([1], dtype=dtype))
    if value.data_type == TensorProto.BOOL:
        value = numpy_helper.from_array(np.zeros([1], dtype=np.bool_))
    return ctx.node("ConstantOfShape", [shape], value=value)[0]
