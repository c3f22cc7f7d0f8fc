"""Dead-code elimination.

Requires: a graph whose ops are in dependency order.
Guarantees: every remaining op contributes to an output, every remaining parameter is
used by a remaining op; order and names are unchanged.
"""

from __future__ import annotations

from netc.compiler.ir import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    live: set[int] = {id(v) for v in graph.outputs.values()}
    kept = []
    for op in reversed(graph.ops):
        if any(id(v) in live for v in op.outputs):
            kept.append(op)
            live.update(id(v) for v in op.inputs if v is not None)
            for region in op.regions:  # values a body captures from the enclosing graph
                live.update(id(v) for inner in region.walk() for v in inner.inputs if v is not None)
    params = [p for p in graph.params if id(graph.param_values[p.name]) in live]
    return Graph(graph.name, list(graph.inputs), dict(graph.outputs), list(reversed(kept)), params,
                 {p.name: graph.param_values[p.name] for p in params}, graph.source, graph.span)
