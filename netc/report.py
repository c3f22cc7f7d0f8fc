"""Text tables for `netc check` and `netc params`: layers with their shapes, parameter
counts and FLOPs; parameters with their shapes and initialisers; totals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netc.compiler import dims as D
from netc.compiler.ir import Graph, Op, Param
from netc.compiler.ops import REGISTRY

FOLDED_KINDS = ("constant",)  # pure constants: folded into initializers, left out of the table


@dataclass
class LayerRow:
    label: str
    kind: str
    type: str
    params: int
    flops: int


def human(n: float) -> str:
    """1234 -> 1.2K, 4_100_000_000 -> 4.1G."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:g}" if isinstance(n, float) else str(n)


def human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def op_params(op: Op) -> list[Param]:
    """The parameters an op reads, its regions' included, each once."""
    seen: dict[str, Param] = {}
    ops = [op, *(inner for region in op.regions for inner in region.walk())]
    for o in ops:
        for v in o.inputs:
            if v is not None and v.param is not None:
                seen.setdefault(v.param.name, v.param)
    return list(seen.values())


def op_flops(op: Op, sizes: dict[str, int] | None = None) -> int:
    """The op's FLOP count with symbolic dims at `sizes` (the network's least sizes), else 1."""
    return D.evaluate(REGISTRY[op.kind].flops(op), sizes or {}, default=1)


def layer_rows(graph: Graph) -> list[LayerRow]:
    """One row per op; a parameter is counted at the first op that reads it, so a shared or
    tied tensor counts once and the column adds up to the total. FLOPs at the least sizes."""
    sizes = graph.min_sizes.minima
    counted: set[str] = set()
    rows = []
    for op in graph.ops:
        if op.kind in FOLDED_KINDS:
            continue
        new = [p for p in op_params(op) if p.name not in counted]
        counted.update(p.name for p in new)
        rows.append(LayerRow(op.label or op.kind, op.kind, ", ".join(str(v.type) for v in op.outputs),
                             sum(p.size for p in new), op_flops(op, sizes)))
    return rows


def requirement_lines(graph: Graph) -> list[str]:
    """`needs T ≥ 5 (conv1d0 at f.net:4:7)`: the least sizes of symbolic dims, and where."""
    found = graph.min_sizes
    return [f"needs {name} ≥ {least}" + (f" (from {found.spans[name]})" if found.spans.get(name) else "")
            for name, least in found.minima.items() if least > 1]


def symbolic_dims(graph: Graph) -> list[str]:
    names: list[str] = []
    for v in graph.inputs:
        for d in v.type.shape:
            names += [s for s in sorted(D.symbols(d)) if s not in names]
    return names


def signature(graph: Graph) -> str:
    ins = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
    outs = ", ".join(f"{name}: {v.type}" for name, v in graph.outputs.items())
    return f"network {graph.name}({ins}) -> {outs}"


def check_table(graph: Graph) -> str:
    """Per-layer shapes, parameter counts and FLOPs, then the totals."""
    rows = layer_rows(graph)
    header = ["layer", "op", "output", "params", "FLOPs"]
    body = [[r.label, r.kind, r.type, f"{r.params:,}" if r.params else "-", human(r.flops) if r.flops else "-"]
            for r in rows]
    lines = [signature(graph), "", *_table(header, body, right=(3, 4))]
    trainable = sum(p.size for p in graph.params if p.trainable)
    frozen = sum(p.size for p in graph.params if not p.trainable)
    nbytes = sum(p.size * p.dtype.itemsize for p in graph.params)
    flops = sum(r.flops for r in rows)
    dims = symbolic_dims(graph)
    flop_note = ""
    if dims:
        at = ", ".join(f"{d}={graph.min_sizes.minima.get(d, 1)}" for d in dims)
        flop_note = f"  (symbolic dims at their least sizes {at}; set sizes with --set {dims[0]}=...)"
    needs = requirement_lines(graph)
    lines += [
        "",
        *(["sizes: " + "; ".join(needs)] if needs else []),
        f"trainable parameters:     {trainable:,}",
        f"non-trainable parameters: {frozen:,}",
        f"parameter memory:         {human_bytes(nbytes)}",
        f"total FLOPs:              {human(flops)}{f' ({flops:,})' if flops >= 1000 else ''}{flop_note}",
    ]
    return "\n".join(lines)


def param_uses(graph: Graph) -> dict[str, int]:
    """How many ops read each parameter (those inside regions included): more than one for a
    tied or shared parameter."""
    uses = {p.name: 0 for p in graph.params}
    for op in graph.walk():
        if op.regions:  # it lists what its region captures; the ops inside are counted
            continue
        for v in {id(v): v for v in op.inputs if v is not None and v.param is not None}.values():
            uses[v.param.name] += 1
    return uses


def params_table(graph: Graph) -> str:
    """Every parameter: the name weight files use, shape, dtype, initialiser, trainable, and,
    when some are shared, how many ops use each."""
    uses = param_uses(graph)
    shared = [p for p in graph.params if uses[p.name] > 1]
    header = ["name", "shape", "dtype", "init", "trainable", "size"] + (["uses"] if shared else [])
    body = [[p.name, str(list(p.shape)), p.dtype.value, str(p.init), "yes" if p.trainable else "no", f"{p.size:,}"]
            + ([str(uses[p.name])] if shared else []) for p in graph.params]
    total = sum(p.size for p in graph.params)
    trainable = sum(p.size for p in graph.params if p.trainable)
    lines = [f"network {graph.name}: {len(graph.params)} parameter tensors", ""]
    lines += _table(header, body, right=(5, 6)) if body else ["(no parameters)"]
    lines += ["", f"total: {total:,} values ({trainable:,} trainable)"]
    if shared:
        lines.append(f"shared: {len(shared)} tensor(s) used by several ops, each counted and stored once")
    return "\n".join(lines)


def _table(header: Sequence[str], body: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    out = []
    for row in [header, *body]:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
    return out
