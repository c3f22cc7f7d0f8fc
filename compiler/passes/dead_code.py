"""Dead-code elimination.

Requires: a graph whose ops are in dependency order; ops with regions list the values their
regions capture as their trailing inputs (`netc.compiler.regions`).
Guarantees: every remaining op contributes to an output, every remaining parameter is
used by a remaining op; inside regions, every remaining op contributes to the region's
outputs (a region's inputs stay: they are its op's interface); order and names are unchanged.
"""

from __future__ import annotations

from dataclasses import replace

from netc.compiler.ir import Graph, Op
from netc.compiler.regions import with_regions


def eliminate_dead_code(graph: Graph) -> Graph:
    kept = _live_ops(graph)
    live = {id(v) for op in kept for v in op.inputs if v is not None}
    live |= {id(v) for v in graph.outputs.values()}
    params = [p for p in graph.params if id(graph.param_values[p.name]) in live]
    return replace(graph, ops=kept, params=params,  # every other field kept
                   param_values={p.name: graph.param_values[p.name] for p in params})


def _live_ops(graph: Graph) -> list[Op]:
    live: set[int] = {id(v) for v in graph.outputs.values()}
    kept = []
    for op in reversed(graph.ops):
        if any(id(v) in live for v in op.outputs):
            if op.regions:
                op = _prune_regions(op)
            kept.append(op)
            live.update(id(v) for v in op.inputs if v is not None)
            for region in op.regions:  # values a body captures from the enclosing graph
                live.update(id(v) for inner in region.walk() for v in inner.inputs if v is not None)
    return list(reversed(kept))


def _prune_regions(op: Op) -> Op:
    regions = []
    for region in op.regions:
        ops = _live_ops(region)
        if len(ops) == len(region.ops) and all(a is b for a, b in zip(ops, region.ops)):
            regions.append(region)
        else:
            regions.append(Graph(region.name, list(region.inputs), dict(region.outputs), ops, span=region.span))
    if all(a is b for a, b in zip(regions, op.regions)):
        return op
    return with_regions(op, regions)
