"""Hoisting work out of recurrence bodies.

Requires: ops in dependency order at every level; ops with regions list their captures as
trailing inputs (`netc.compiler.regions`); a region op whose region inputs include per-step
slices of outer sequences says so through its registry entry (`RegionOp.sequences`) and can
rebuild itself over new slices (`with_sequences`).

Guarantees: the graph computes the same outputs; out of every region,
- loop-invariant ops (every input comes from outside the region or from another invariant
  op: parameters, captured tensors, constants) move unchanged to just before the region's
  op, so they run once instead of once per step;
- step-polymorphic ops (`OpDef.hoistable`) whose inputs are per-step slices, other hoisted
  values or invariants move out as one op over the whole sequence `[T, ...]` (an input
  projection `dense(x_t)` becomes one MatMul over `[T, N, D]`); their per-step results enter
  the body as new scan inputs;
- slices the body no longer reads stop being scan inputs (one stays if none is read, so
  the number of steps is still known).
Nested regions are handled innermost first, so work moves out as far as it can. Values keep
their identity: a hoisted op's per-step result becomes an input of the body it stayed in.
"""

from __future__ import annotations

from dataclasses import replace

from netc.compiler.ir import Graph, Op, TensorType, Value
from netc.compiler.ops import REGISTRY
from netc.compiler.ops.loops import RegionOp
from netc.compiler.ops.registry import draws
from netc.compiler.regions import local_values, with_regions


def hoist_loop_invariants(graph: Graph) -> Graph:
    return replace(graph, ops=_hoist_ops(graph.ops))  # every other field kept


def _hoist_ops(ops: list[Op]) -> list[Op]:
    out: list[Op] = []
    for op in ops:
        if not op.regions:
            out.append(op)
            continue
        inner = [_hoist_ops(r.ops) for r in op.regions]
        if any(len(a) != len(r.ops) or any(x is not y for x, y in zip(a, r.ops)) for a, r in zip(inner, op.regions)):
            op = with_regions(op, [_with_ops(r, ops) for r, ops in zip(op.regions, inner)])
        regions = op.regions
        opdef = REGISTRY[op.kind]
        if len(regions) == 1 and isinstance(opdef, RegionOp) and "cell" not in op.attrs:  # recognised: native op
            moved, op = _hoist_region(op, opdef)
            out.extend(moved)
        out.append(op)
    return out


def _with_ops(region: Graph, ops: list[Op]) -> Graph:
    return Graph(region.name, list(region.inputs), dict(region.outputs), ops, span=region.span)


def _hoist_region(op: Op, opdef: RegionOp) -> tuple[list[Op], Op]:
    (region,) = op.regions
    pairs = opdef.sequences(op)
    whole: dict[int, Value] = {id(s): seq for s, seq in pairs}  # per-step value -> the sequence
    steps = pairs[0][1].type.shape[0] if pairs else None
    local = local_values(region)
    outside: set[int] = set()  # region values now computed outside, unchanged
    moved: list[Op] = []
    hoisted: list[Value] = []  # per-step values now computed outside over the whole sequence
    body: list[Op] = []

    def invariant(v: Value) -> bool:
        return id(v) not in local or id(v) in outside

    for inner in region.ops:
        values = [v for v in inner.inputs if v is not None]
        if all(invariant(v) for v in values) and not draws(inner):  # a draw in a body is fresh at every step
            moved.append(inner)
            outside.update(id(v) for v in inner.outputs)
            continue
        varying = [v is not None and id(v) in whole for v in inner.inputs]
        if steps is not None and not inner.regions and all(invariant(v) or id(v) in whole for v in values) \
                and REGISTRY[inner.kind].hoistable(inner, varying):
            moved.append(_over_sequence(inner, varying, whole, steps, hoisted))
            continue
        body.append(inner)
    if not moved:
        return [], op
    used = {id(v) for inner in body for v in inner.inputs if v is not None}
    used |= {id(v) for v in region.outputs.values()}
    slices = [(s, seq) for s, seq in pairs if id(s) in used]
    for v in hoisted:
        if id(v) in used:
            v.producer = None  # now a slice the body receives
            slices.append((v, whole[id(v)]))
    if pairs and not slices:
        slices = pairs[:1]
    sliced = {id(s) for s, _ in pairs}
    carried = [v for v in region.inputs if id(v) not in sliced]
    new_region = Graph(region.name, [*carried, *(s for s, _ in slices)], dict(region.outputs), body,
                       span=region.span)
    if pairs:
        return moved, opdef.with_sequences(op, new_region, [seq for _, seq in slices])
    return moved, with_regions(op, [new_region])


def _over_sequence(inner: Op, varying: list[bool], whole: dict[int, Value], steps, hoisted: list[Value]) -> Op:
    """`inner` applied to whole sequences: varying inputs replaced by their sequences."""
    inputs = [whole[id(v)] if var and v is not None else v for v, var in zip(inner.inputs, varying)]
    outputs = [Value(v.name + "_seq", TensorType(v.type.dtype, (steps, *v.type.shape))) for v in inner.outputs]
    new = Op(inner.kind, inputs, outputs, dict(inner.attrs), inner.span, (), inner.label)
    for v, seq in zip(inner.outputs, outputs):
        seq.producer = new
        whole[id(v)] = seq
        hoisted.append(v)
    return new
