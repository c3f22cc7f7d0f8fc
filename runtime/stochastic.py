"""How `netc verify` and the parity tests check random results.

onnxruntime's generator and the reference's cannot agree value by value, so:
- each random op (`OpDef.stochastic`) has its draws checked on both sides by the op's own
  `OpDef.check_draw` (support and moments, given its inputs);
- every value computed from a draw is compared by structure only: shape, dtype, and NaN
  nowhere the other side has none;
- everything else is compared value by value, as usual.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import Graph, Op, TensorType
from netc.compiler.ops import REGISTRY
from netc.compiler.ops.registry import draws


def random_values(graph: Graph) -> set[int]:
    """The ids of the top-level values that depend on a random draw."""
    tainted: set[int] = set()
    for op in graph.ops:
        if draws(op) or any(v is not None and id(v) in tainted for v in op.inputs):
            tainted.update(id(v) for v in op.outputs)
    return tainted


def free_axes(graph: Graph, t: TensorType) -> set[int]:
    """Axes of a value of type `t` whose size is decided by a computation, not by the inputs
    (a generated sequence's length): random results may differ there."""
    given = {s for v in graph.inputs for d in v.type.shape for s in D.symbols(d)}
    return {axis for axis, d in enumerate(t.shape) if not D.symbols(d) <= given}


def structure_problem(got: np.ndarray, want: np.ndarray, free: set[int] = frozenset()) -> str:
    """Why two results of a random computation cannot both be right ('' when they can);
    sizes along the `free` axes may differ."""
    fixed = [axis for axis in range(want.ndim) if axis not in free]
    if got.ndim != want.ndim or any(got.shape[a] != want.shape[a] for a in fixed):
        return f"onnxruntime gives shape {list(got.shape)}, the reference {list(want.shape)}"
    if got.dtype != want.dtype:
        return f"onnxruntime gives dtype {got.dtype}, the reference {want.dtype}"
    if np.issubdtype(want.dtype, np.floating) and np.isnan(got).any() != np.isnan(want).any():
        return "NaN on one side only"
    return ""


def draw_problems(op: Op, sides: Sequence[tuple[str, Sequence[np.ndarray | None], Sequence[np.ndarray]]]) -> list[str]:
    """The op's `check_draw` applied to each side's (inputs, outputs), problems named by side."""
    opdef = REGISTRY[op.kind]
    return [f"{side}: {p}" for side, ins, outs in sides for p in opdef.check_draw(op, ins, outs)]
