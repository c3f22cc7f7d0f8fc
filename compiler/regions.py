"""Regions: the sub-graphs an op owns (a recurrence's step, a generation loop's body).

A region is a `Graph` whose `inputs` are its formal parameters (the per-step state and
slices) and whose `outputs` are what one step returns. Its ops may read values of the
enclosing graphs - parameters, tensors passed to the step - by identity; those are its
*captures*. An op with regions lists its captures as its trailing inputs (their count is
the `captures` attribute), so every pass sees the op's whole data flow without looking
inside, and nested regions compose: an inner op's captures are inputs of an op of the
outer region, hence free in the outer region too.

`Graph.walk()` is the one traversal helper for visiting every op at every depth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from netc.compiler.ir import Graph, Op, Value


def local_values(region: Graph) -> set[int]:
    """Ids of the values a region defines: its inputs and its ops' results."""
    ids = {id(v) for v in region.inputs}
    for op in region.ops:
        ids.update(id(v) for v in op.outputs)
    return ids


def captures(regions: Iterable[Graph]) -> list[Value]:
    """Values the regions read from enclosing graphs, in first-use order, without repeats."""
    out: list[Value] = []
    seen: set[int] = set()
    for region in regions:
        local = local_values(region)
        used = [v for op in region.ops for v in op.inputs if v is not None]
        used += list(region.outputs.values())
        for v in used:
            if id(v) not in local and id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


def split_captures(op: Op) -> tuple[list[Value | None], list[Value]]:
    """An op's own inputs and its trailing captures."""
    n = op.attrs.get("captures", 0)
    if not n:
        return list(op.inputs), []
    return list(op.inputs[:-n]), [v for v in op.inputs[-n:] if v is not None]


def with_regions(op: Op, regions: Sequence[Graph], own_inputs: Sequence[Value | None] | None = None,
                 attrs: dict | None = None) -> Op:
    """A copy of `op` with new regions (and optionally new own inputs and attributes); the
    captures are recomputed. The op's result values are kept and now name the copy as
    their producer, so consumers need no rewiring."""
    own = list(split_captures(op)[0] if own_inputs is None else own_inputs)
    caps = captures(regions)
    new_attrs = dict(op.attrs if attrs is None else attrs)
    new_attrs["captures"] = len(caps)
    new = Op(op.kind, own + caps, list(op.outputs), new_attrs, op.span, tuple(regions), op.label)
    for v in new.outputs:
        v.producer = new
    return new
