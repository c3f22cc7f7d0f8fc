"""How compiled networks and errors show in a notebook or a REPL: a one-line `repr`, the
check table as text (`summary`) and as an HTML table (`_repr_html_`)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from netc.report import check_table, human, human_bytes, layer_rows, signature

if TYPE_CHECKING:
    from netc.compiler.ir import Graph


def short_repr(graph: Graph, opset: int | None) -> str:
    """`<Compiled ResNet18(image: f32[N, 3, 224, 224]) -> logits: f32[N, 1000]: 11,689,512
    parameters (44.6 MiB), opset 21>` — never the weights."""
    total = sum(p.size for p in graph.params)
    nbytes = sum(p.size * p.dtype.itemsize for p in graph.params)
    ins = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
    outs = ", ".join(f"{name}: {v.type}" for name, v in graph.outputs.items())
    where = f", opset {opset}" if opset is not None else ""
    return (f"<Compiled {graph.name}({ins}) -> {outs}: {total:,} parameters "
            f"({human_bytes(nbytes)}){where}>")


def summary(graph: Graph) -> str:
    """The table `netc check` prints: every layer's output type, parameters and FLOPs."""
    return check_table(graph)


def html_table(graph: Graph) -> str:
    """The check table as HTML, for Jupyter's rich display."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(r.label)}</td><td>{esc(r.kind)}</td><td><code>{esc(r.type)}</code></td>"
        f"<td style='text-align:right'>{f'{r.params:,}' if r.params else '-'}</td>"
        f"<td style='text-align:right'>{human(r.flops) if r.flops else '-'}</td></tr>"
        for r in layer_rows(graph))
    total = sum(p.size for p in graph.params)
    return (f"<div><p><code>{esc(signature(graph))}</code></p>"
            "<table><thead><tr><th>layer</th><th>op</th><th>output</th><th>params</th><th>FLOPs</th></tr>"
            f"</thead><tbody>{rows}</tbody></table><p>{total:,} parameters</p></div>")
