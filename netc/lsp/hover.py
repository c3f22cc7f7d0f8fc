"""Hover text (Markdown): the type of the value under the cursor, the layer a call made
(its output, parameters and FLOPs), an op's signature and doc, a block's signature."""

from __future__ import annotations

from typing import Any

from netc.compiler.elaborate import signature_text
from netc.compiler.ir import Op, Value
from netc.compiler.values import BlockFn, Builtin, Intrinsic, describe
from netc.dsl import ast
from netc.dsl.errors import Span
from netc.lsp.analysis import Analysis
from netc.lsp.symbols import Definition, contains
from netc.report import human, op_flops, op_params

_NAMED = ("block", "network", "const", "dim")  # definitions with more to say than their value
MAX_SHOWN = 4  # distinct types / layer instances listed before "and N more"


def hover(analysis: Analysis, line: int, col: int, path: str | None = None,
          text: str | None = None) -> tuple[str, Span] | None:
    """Markdown for the 1-based position, with the span it describes; None when nothing is there.
    `path` and `text` name another file that `analysis` elaborated (a block file opened
    beside the network that imports it): its values are in the same trace."""
    path = path or analysis.path
    spans = [s for s in analysis.values if s.file == path and contains(s, line, col)]
    occurrence = analysis.symbols.at(line, col) if analysis.symbols and path == analysis.path else None
    parts: list[str] = []
    target: Span | None = None
    if spans:
        target = min(spans, key=_size)
        values = analysis.values[target]
        parts.append(_values_text(values, _source(analysis.text if text is None else text, target)))
        parts.append(_layers(analysis, target, isinstance(values[0], Builtin)))
        if isinstance(values[0], BlockFn | Builtin | Intrinsic):
            occurrence = None  # already described
    if occurrence is not None and occurrence[1] is not None and (not spans or occurrence[1].kind in _NAMED):
        parts.insert(0, _definition_text(analysis, occurrence[1]))
        target = target or occurrence[0]
    parts = [p for p in parts if p]
    if not parts or target is None:
        return None
    return "\n\n---\n\n".join(parts), target


def _size(span: Span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_col - span.col if span.end_line == span.line else 10**6)


def _source(text: str, span: Span) -> str:
    lines = text.split("\n")
    if span.line != span.end_line or span.line > len(lines):
        return ""
    return lines[span.line - 1][span.col - 1:span.end_col - 1]


def _values_text(values: list[Any], source: str) -> str:
    """One value, or the distinct values an expression took in several block instances."""
    first = values[0]
    if isinstance(first, Builtin):
        return op_text(first)
    if isinstance(first, Intrinsic):
        return f"```netc\n{signature_text(first.name, first.signature)}\n```\n{first.doc}"
    if isinstance(first, BlockFn):
        return block_text(first.defn, first.module.module.path)
    shown = list(dict.fromkeys(_value_text(v) for v in values))
    name = f"`{source}`: " if source and len(source) <= 40 else ""
    if len(shown) == 1:
        text = f"{name}{shown[0]}"
        return text + (f" (all {len(values)} evaluations)" if len(values) > 1 else "")
    listed = "\n".join(f"- {s}" for s in shown[:MAX_SHOWN])
    more = f"\n- ... and {len(shown) - MAX_SHOWN} more" if len(shown) > MAX_SHOWN else ""
    what = "types" if all(isinstance(v, Value) for v in values) else "values"
    # Several block instances or loop iterations evaluated the same text.
    return f"{name}{len(shown)} {what} in {len(values)} evaluations:\n{listed}{more}"


def _value_text(value: Any) -> str:
    if isinstance(value, Value):
        if value.param is not None:
            return f"`{value.type}` parameter `{value.param.name}` ({value.param.init})"
        return f"`{value.type}`"
    return f"`{describe(value)}`"


def op_text(op: Builtin) -> str:
    opdef = op.opdef
    lines = [f"```netc\n{signature_text(op.name, opdef.signature)}\n```", opdef.doc]
    args = [f"- `{a.name}`: {a.doc}" for a in opdef.signature if a.doc]
    return "\n".join([*lines, *args])


def block_text(defn: ast.BlockDef, path: str) -> str:
    params = []
    for p in defn.params:
        typed = f"{p.name}: {p.type.id}" if p.type else p.name
        params.append(typed + (" = ..." if p.default is not None else ""))
    return f"```netc\nblock {defn.name}({', '.join(params)})\n```\ndefined at {path}:{defn.span.line}"


def _layers(analysis: Analysis, target: Span, callee: bool) -> str:
    """The layer instances made by the expression at the cursor (a tensor operator), or by
    the call whose callee is at the cursor (`conv2d` in `conv2d(64, kernel=3)`)."""
    ops: list[Op] = list(analysis.ops.get(target, ()))
    if callee:
        for span, made in analysis.ops.items():
            if span != target and (span.file, span.line, span.col) == (target.file, target.line, target.col):
                ops += made
    ops = [op for op in ops if op.kind != "constant"]
    if not ops:
        return ""
    rows = []
    owner = {id(o): g.min_sizes.minima for g in analysis.graphs for o in g.walk()}  # FLOPs at least sizes
    for op in ops[:MAX_SHOWN]:
        params = sum(p.size for p in op_params(op))
        flops = op_flops(op, owner.get(id(op)))
        out = ", ".join(f"`{v.type}`" for v in op.outputs)
        rows.append(f"- layer `{op.label or op.kind}` ({op.kind}) -> {out}; "
                    f"{params:,} parameters; {human(flops)} FLOPs")
    if len(ops) > MAX_SHOWN:
        rows.append(f"- ... and {len(ops) - MAX_SHOWN} more instances")
    return "\n".join(rows)


def _definition_text(analysis: Analysis, defn: Definition) -> str:
    if defn.kind == "block":
        module = _module_of(analysis, defn.span.file)
        block = module.blocks.get(defn.name) if module else None
        return block_text(block, defn.span.file) if block else ""
    if defn.kind == "network":
        for graph in analysis.graphs:
            if graph.name == defn.name:
                params = sum(p.size for p in graph.params)
                flops = sum(op_flops(op, graph.min_sizes.minima) for op in graph.ops)
                ins = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
                outs = ", ".join(f"{k}: {v.type}" for k, v in graph.outputs.items())
                return (f"```netc\nnetwork {graph.name}({ins}) -> {outs}\n```\n"
                        f"{params:,} parameters; {human(flops)} FLOPs (symbolic dims at their least sizes"
                        + (f": {graph.min_sizes.requirement_text()})" if graph.min_sizes.requirement_text() else ", 1)"))
        return f"network `{defn.name}`"
    if defn.kind == "const":
        module = _module_of(analysis, defn.span.file)
        const = module.consts.get(defn.name) if module else None
        if const is not None and const.value.span in analysis.values:
            return f"const `{defn.name}` = {_value_text(analysis.values[const.value.span][0])}"
        return f"const `{defn.name}`"
    if defn.kind in ("input", "output"):
        for graph in analysis.graphs:
            if graph.span is not None and contains(graph.span, defn.span.line, defn.span.col):
                values = graph.outputs if defn.kind == "output" else {v.name: v for v in graph.inputs}
                if defn.name in values:
                    return f"{defn.kind} `{defn.name}`: `{values[defn.name].type}`"
        return ""
    if defn.kind == "dim":
        return f"symbolic dim `{defn.name}`"
    return ""


def _module_of(analysis: Analysis, path: str):
    if analysis.program is None:
        return None
    for info in analysis.program.modules.values():
        if info.module.path == path:
            return info
    return None
