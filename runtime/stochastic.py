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

from netc.compiler.ir import Graph, Op
from netc.compiler.ops import REGISTRY
from netc.runtime.run import short_dtype


def draws(op: Op) -> bool:
    """Whether `op` draws random numbers itself or in its regions."""
    if REGISTRY[op.kind].stochastic(op):
        return True
    return any(REGISTRY[inner.kind].stochastic(inner) for region in op.regions for inner in region.walk())


def random_values(graph: Graph) -> set[int]:
    """The ids of the top-level values that depend on a random draw."""
    tainted: set[int] = set()
    for op in graph.ops:
        if draws(op) or any(v is not None and id(v) in tainted for v in op.inputs):
            tainted.update(id(v) for v in op.outputs)
    return tainted


def structure_problem(got: np.ndarray, want: np.ndarray) -> str:
    """Why two results of a random computation cannot both be right ('' when they can)."""
    if got.shape != want.shape:
        return f"onnxruntime gives shape {list(got.shape)}, the reference {list(want.shape)}"
    if got.dtype != want.dtype:
        return f"onnxruntime gives dtype {got.dtype}, the reference {want.dtype}"
    if np.issubdtype(want.dtype, np.floating) and np.isnan(got).any() != np.isnan(want).any():
        return "NaN on one side only"
    return ""


def describe(array: np.ndarray) -> str:
    return f"{short_dtype(array.dtype)}{list(array.shape)}"


def draw_problems(op: Op, sides: Sequence[tuple[str, Sequence[np.ndarray | None], Sequence[np.ndarray]]]) -> list[str]:
    """The op's `check_draw` applied to each side's (inputs, outputs), problems named by side."""
    opdef = REGISTRY[op.kind]
    return [f"{side}: {p}" for side, ins, outs in sides for p in opdef.check_draw(op, ins, outs)]
