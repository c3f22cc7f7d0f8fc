"""`netc graph`: a block-level diagram of a network, drawn with Graphviz.

The diagram is made from the elaborated IR, before optimisation passes, so it shows the
network as written. A layer's label `bottleneck3.shortcut0.conv2d0` names the block
instances it sits in: instances down to `depth` levels are clusters, deeper ones collapse
into one node with their parameters summed. A recurrence (an op owning a step region) is
a cluster holding its step, with a dashed edge back from the step's results to the
recurrence — the loop; collapsed, it is one node with a loop edge. Edges carry the
shape of the tensor they carry; parameters are counted in their layer, not drawn.
"""

from __future__ import annotations

import argparse
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from netc.compiler.ir import Graph, Op, Value
from netc.dsl.errors import NetcInputError
from netc.files import atomic_write, check_output_path
from netc.report import op_params

FORMATS = ("svg", "png", "dot")
HIDDEN_KINDS = ("constant",)  # folded into initializers: not layers


@dataclass
class _Node:
    key: str
    kind: str
    ops: list[Op] = field(default_factory=list)
    loop: bool = False  # a recurrence (drawn with a loop edge when collapsed)

    def params(self, expanded: set[str]) -> int:
        """Parameters of the node's layers; a recurrence whose step is drawn counts none of
        its step's (the step's layers show them)."""
        seen: dict[str, int] = {}
        for op in self.ops:
            params = op_params(op)
            if op.regions and (op.label or op.kind) in expanded:
                params = [v.param for v in op.inputs if v is not None and v.param is not None
                          and not any(v in inner.inputs for r in op.regions for inner in r.walk())]
            for p in params:
                seen[p.name] = p.size
        return sum(seen.values())


def _path(label: str) -> list[str]:
    """Block-instance prefixes of a layer label: 'a0.b1.conv2d0' -> ['a0', 'a0.b1']."""
    parts = label.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class _Diagram:
    def __init__(self, graph: Graph, depth: int):
        self.graph = graph
        self.depth = depth
        self.nodes: dict[str, _Node] = {}
        self.node_of_value: dict[int, str] = {}
        self.edges: dict[tuple[str, str], tuple[str, bool]] = {}  # (src, dst) -> (label, back edge)
        self.owners: set[str] = set()  # labels of ops that own regions (clusters of their own)

    def key(self, op: Op) -> str:
        path = _path(op.label or op.kind)
        return path[self.depth] if len(path) > self.depth else (op.label or op.kind)

    def build(self) -> _Diagram:
        for v in self.graph.inputs:
            self.nodes["input " + v.name] = _Node("input " + v.name, "input")
            self.node_of_value[id(v)] = "input " + v.name
        self._ops(self.graph, None)
        self._edges(self.graph, None)
        for name, v in self.graph.outputs.items():
            self.nodes["output " + name] = _Node("output " + name, "output")
            if id(v) in self.node_of_value:
                self._edge(self.node_of_value[id(v)], "output " + name, v)
        return self

    def _ops(self, graph: Graph, owner: str | None) -> None:
        for op in graph.ops:
            if op.kind in HIDDEN_KINDS:
                continue
            key = self.key(op)
            label = op.label or op.kind
            node = self.nodes.setdefault(key, _Node(key, "block"))
            if key == label:  # the op itself, not a collapsed block instance
                node.kind = op.kind
                node.loop = bool(op.regions)
            node.ops.append(op)
            for v in op.outputs:
                self.node_of_value[id(v)] = key
            if op.regions:
                if len(_path(label)) < self.depth:  # its step is drawn, in a cluster of its own
                    self.owners.add(label)
                for region in op.regions:
                    for v in region.inputs:  # a step's inputs come from the recurrence
                        self.node_of_value[id(v)] = key
                    self._ops(region, key)

    def _edges(self, graph: Graph, owner: str | None) -> None:
        for op in graph.ops:
            if op.kind in HIDDEN_KINDS:
                continue
            dst = self.key(op)
            for v in op.inputs:
                if v is not None and v.param is None and id(v) in self.node_of_value:
                    self._edge(self.node_of_value[id(v)], dst, v)
            for region in op.regions:
                self._edges(region, dst)
                for v in region.outputs.values():  # the step's results feed the next step
                    if id(v) in self.node_of_value:
                        self._edge(self.node_of_value[id(v)], dst, v, back=True)

    def _edge(self, src: str, dst: str, v: Value, back: bool = False) -> None:
        if src == dst and not (back and self.nodes[src].loop):
            return  # inside a collapsed block instance
        label = "each step" if src == dst else str(v.type)
        self.edges.setdefault((src, dst), (label, back))


def _dot(d: _Diagram, title: str):
    import graphviz

    dot = graphviz.Digraph(title, graph_attr={"rankdir": "TB", "fontname": "Helvetica", "label": title,
                                              "labelloc": "t", "fontsize": "16"},
                           node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "#eef3fb",
                                      "fontname": "Helvetica", "fontsize": "11"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "9", "color": "#555555"})
    clusters: dict[str, list[str]] = defaultdict(list)  # cluster path -> node keys directly inside
    for key, node in d.nodes.items():
        if node.kind in ("input", "output"):
            continue
        path = [p for p in _path(key)] + ([key] if key in d.owners else [])
        clusters[path[-1] if path else ""].append(key)
    names = {c for c in clusters if c} | {p for c in clusters if c for p in _path(c)}

    def node_label(node: _Node) -> str:
        if node.kind == "input":
            v = next(v for v in d.graph.inputs if "input " + v.name == node.key)
            return f"input {v.name}\n{v.type}"
        if node.kind == "output":
            return f"output {node.key[7:]}"
        short = node.key.rsplit(".", 1)[-1]
        kind = node.kind if node.kind != "block" else f"block, {len(node.ops)} ops"
        params = node.params(d.owners)
        return f"{short}\n{kind}" + (f"\n{params:,} params" if params else "")

    def emit(graph, prefix: str) -> None:
        for key in clusters.get(prefix, []):
            node = d.nodes[key]
            attrs = {"tooltip": key}
            if node.kind == "block":
                attrs["fillcolor"] = "#dde8d5"
            if node.loop:
                attrs["fillcolor"] = "#f6e3c6"
            graph.node(key, node_label(node), **attrs)
        for child in sorted(c for c in names if _parent(c) == prefix):
            with graph.subgraph(name="cluster_" + child) as sub:
                loop = child in d.owners
                sub.attr(label=child + (" (loop)" if loop else ""), style="rounded,dashed" if loop else "rounded",
                         color="#b07c2a" if loop else "#7a8ca5", fontname="Helvetica", fontsize="11")
                emit(sub, child)

    for key, node in d.nodes.items():
        if node.kind in ("input", "output"):
            dot.node(key, node_label(node), shape="ellipse", fillcolor="#ffffff", tooltip=key)
    emit(dot, "")
    for (src, dst), (label, back) in d.edges.items():
        attrs = {"style": "dashed", "constraint": "false", "color": "#b07c2a"} if back else {}
        dot.edge(src, dst, label=label, **attrs)
    return dot


def _parent(cluster: str) -> str:
    path = _path(cluster)
    return path[-1] if path else ""


def diagram(graph: Graph, depth: int = 1):
    """The Graphviz `Digraph` of `graph` with block instances opened down to `depth`."""
    return _dot(_Diagram(graph, depth).build(), f"network {graph.name}")


def write_graph(args: argparse.Namespace) -> Path:
    """The `netc graph` command: elaborate, draw, write atomically."""
    from netc import api
    from netc.compiler.elaborate import NetworkOptions, choose_network, elaborate_network
    from netc.tool_commands import require

    out = Path(args.output)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise NetcInputError(f"cannot tell the picture format of {out}: use .svg, .png or .dot")
    source = Path(args.file)
    if not source.is_file():
        raise NetcInputError(f"file not found: {args.file}")
    check_output_path(out, source)
    require("graphviz", "graph", "graph")
    if fmt != "dot" and shutil.which("dot") is None:
        raise NetcInputError(
            f"netc graph needs Graphviz's `dot` program to write .{fmt}; it is not on PATH",
            None, ["install it: `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
                   "`conda install graphviz`", f"or write the Graphviz source: -o {out.with_suffix('.dot')}"])
    settings = dict(args.settings)
    program = api.load(source, allow_import_root=args.allow_import_root)
    graph = elaborate_network(program, choose_network(program, args.network), NetworkOptions(settings))
    dot = diagram(graph, args.depth)
    if fmt == "dot":
        atomic_write(out, lambda tmp: tmp.write_text(dot.source, encoding="utf-8"))
    else:
        data = dot.pipe(format=fmt)
        atomic_write(out, lambda tmp: tmp.write_bytes(data))
    return out
