"""netc's recurrent networks against the same networks written in PyTorch and exported
with torch.onnx.export, side by side on onnxruntime CPU.

    python benchmarks/recurrent_vs_torch.py [--quick] [--json FILE] [--sections 1,2,3,4]
        [--threads 2] [--rounds 40] [--T 100 --N 32 --D 256 --H 256] [--no-dynamo]
        [--inspect]

Sections (T=100, N=32, D=H=256 by default; sequences are time-major [T, N, D]):

1. 2-layer bidirectional LSTM tagger, lstm + dense(45) + softmax, against nn.LSTM +
   nn.Linear + softmax. Target: netc / torch <= 1.0.
2. The same with a 2-layer bidirectional GRU (PyTorch's GRU is reset-after, so netc's
   is gru(..., reset="after")). Target: netc / torch <= 1.0.
3. Custom cells written in PyTorch the usual way, a Python loop over the time steps with
   nn.Linear (the exporters unroll it): (a) peephole LSTM, (b) reset-before GRU
   (h~ = tanh(W x + U (r * h) + b)), (c) Elman RNN. netc writes the same cells as step
   blocks run by `recur`, and, where a standard cell covers them, as that cell
   (lstm(peephole=true), gru(reset="before"), rnn). Target: netc / torch <= 0.5.
4. Every standard cell (rnn, lstm, gru, gru reset="after"; one layer, and 2-layer
   bidirectional), lowering="native" against "scan" against "auto" (the default). Target:
   auto within 5% of the faster of native and scan.

Every model of a comparison carries the same weights: the PyTorch ones, loaded into netc
through the import mappings (`import_torch_weights` for the standard cells, transposed
nn.Linear weights for step blocks). Before timing, each model's output must agree with
the reference (the TorchScript export; section 4: lowering="native") at rtol 1e-4,
atol 1e-5. Timing (benchmarks/harness.py): `session.run` on the harness's shared pool of
`--threads` intra-op threads, warm-up runs, then `--rounds` rounds in which every model of
the comparison runs once, the order rotating round by round, so that background load hits
them alike. Rows: each model's median (with its GFLOP/s, netc's FLOP count over the median,
in the JSON), and the paired ratios with bootstrap 95% intervals against the targets: PASS
when the whole interval meets it, FAIL when none of it does, TIE when it holds the target.

`--quick` (run_all.py): 10 rounds after 1 warm-up run; every exporter is kept (the dynamo
export of an unrolled cell takes 5-16 s). `--inspect` prints, per netc model, the node
types onnxruntime leaves after its optimisations (SessionOptions.optimized_model_filepath),
top level and inside Scan bodies; `--json` always records them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cells
import harness
import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

import netc
from netc.compiler.lowering import lower_graph
from netc.compiler.ops.recurrent import import_torch_weights
from netc.compiler.params import materialise
from netc.report import op_flops

RTOL, ATOL = 1e-4, 1e-5
LABELS = 45  # the tagset size of the tagger (Penn Treebank)


# ---------------------------------------------------------------------------- PyTorch models


class Tagger(nn.Module):
    """A 2-layer bidirectional LSTM or GRU, a linear layer and a softmax per step."""

    def __init__(self, cell: str, d: int, h: int, labels: int = LABELS):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn(d, h, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(2 * h, labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(self.rnn(x)[0]), dim=-1)


class PeepholeLSTM(nn.Module):
    """LSTM with diagonal peepholes (Gers and Schmidhuber 2000): i and f see c_{t-1},
    o sees c_t. Gates (i, f, g, o) as one Linear per input."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.hidden = h
        self.x2h = nn.Linear(d, 4 * h)
        self.h2h = nn.Linear(h, 4 * h, bias=False)
        self.p_i = nn.Parameter(torch.empty(h).uniform_(-0.1, 0.1))
        self.p_f = nn.Parameter(torch.empty(h).uniform_(-0.1, 0.1))
        self.p_o = nn.Parameter(torch.empty(h).uniform_(-0.1, 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[1], self.hidden)
        c = x.new_zeros(x.shape[1], self.hidden)
        ys = []
        for t in range(x.shape[0]):
            i, f, g, o = (self.x2h(x[t]) + self.h2h(h)).chunk(4, dim=1)
            i = torch.sigmoid(i + self.p_i * c)
            f = torch.sigmoid(f + self.p_f * c)
            c = f * c + i * torch.tanh(g)
            o = torch.sigmoid(o + self.p_o * c)
            h = o * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys)


class GRUBefore(nn.Module):
    """The lectures' GRU, reset before the recurrent product:
    z, r = sigmoid(W_zr x + U_zr h + b_zr), h~ = tanh(W x + U (r * h) + b),
    h' = (1 - z) * h + z * h~."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.hidden = h
        self.x2h = nn.Linear(d, 3 * h)  # rows (z, r, h)
        self.h2zr = nn.Linear(h, 2 * h, bias=False)
        self.h2h = nn.Linear(h, h, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[1], self.hidden)
        ys = []
        for t in range(x.shape[0]):
            a_zr, a_h = self.x2h(x[t]).split([2 * self.hidden, self.hidden], dim=1)
            z, r = torch.sigmoid(a_zr + self.h2zr(h)).chunk(2, dim=1)
            cand = torch.tanh(a_h + self.h2h(r * h))
            h = (1 - z) * h + z * cand
            ys.append(h)
        return torch.stack(ys)


class Elman(nn.Module):
    """h' = tanh(W x + b + U h)."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.hidden = h
        self.x2h = nn.Linear(d, h)
        self.h2h = nn.Linear(h, h, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[1], self.hidden)
        ys = []
        for t in range(x.shape[0]):
            h = torch.tanh(self.x2h(x[t]) + self.h2h(h))
            ys.append(h)
        return torch.stack(ys)


def torch_onnx(module: nn.Module, x: torch.Tensor, dynamo: bool) -> onnx.ModelProto:
    """`module` exported by torch.onnx.export (TorchScript exporter, or the dynamo one)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(module, (x,), dynamo=True, input_names=["x"], output_names=["y"],
                                        verbose=False)
            return program.model_proto
        buf = io.BytesIO()
        torch.onnx.export(module, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"])
        return onnx.load_from_string(buf.getvalue())


def np_(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


# ---------------------------------------------------------------------------- netc models


def netc_model(source: str, weights: dict[str, np.ndarray] | None) -> tuple[onnx.ModelProto, int]:
    """Compile `.net` text; parameters from `weights` (every one, exactly), else seed 0.
    Also returns netc's FLOP count of the network."""
    graph = netc.build_graph(netc.load("bench.net", source))
    model = lower_graph(graph, materialise(graph, 0, weights, "the PyTorch weights"))
    return model, sum(op_flops(op) for op in graph.ops)


def network(body: str, args: argparse.Namespace, blocks: str = "") -> str:
    return (f"{blocks}\nnetwork Bench {{\n  input x: f32[{args.T}, {args.N}, {args.D}]\n"
            f"  output y = {body}\n}}\n")


PEEPHOLE_BLOCK = cells.SPLIT
# examples/peephole_lstm_lm.net's step: one dense per gate and input.
PEEPHOLE_PER_GATE_BLOCK = cells.PER_GATE

GRU_BLOCK = """
block gru_before(h, x, hidden: int) {
  a_zr, a_h = split(dense(x, 3 * hidden), [2 * hidden, hidden])
  z, r = split(sigmoid(a_zr + dense(h, 2 * hidden, bias=false)), 2)
  cand = tanh(a_h + dense(r * h, hidden, bias=false))
  return (1 - z) * h + z * cand
}
"""

# examples/elman_tagger.net's step.
ELMAN_BLOCK = """
block elman(h, x, hidden: int) {
  return tanh(dense(x, hidden) + dense(h, hidden, bias=false))
}
"""


def _linear_t(w: torch.Tensor) -> np.ndarray:
    """nn.Linear's weight [out, in] as netc's dense weight [in, out]."""
    return np_(w.t())


def peephole_weights(m: PeepholeLSTM, style: str) -> dict[str, np.ndarray]:
    h = m.hidden
    if style == "recur":
        return {"recur0.dense0.weight": _linear_t(m.x2h.weight), "recur0.dense0.bias": np_(m.x2h.bias),
                "recur0.dense1.weight": _linear_t(m.h2h.weight), "recur0.diag0.weight": np_(m.p_i),
                "recur0.diag1.weight": np_(m.p_f), "recur0.diag2.weight": np_(m.p_o)}
    if style == "per-gate":
        out = {}
        for k, gate in enumerate(("i", "f", "c", "o")):  # torch's chunks (i, f, g, o)
            rows = slice(k * h, (k + 1) * h)
            out[f"recur0.dense{2 * k}.weight"] = _linear_t(m.x2h.weight[rows])
            out[f"recur0.dense{2 * k}.bias"] = np_(m.x2h.bias[rows])
            out[f"recur0.dense{2 * k + 1}.weight"] = _linear_t(m.h2h.weight[rows])
            if gate != "c":
                out[f"recur0.diag{'ifo'.index(gate)}.weight"] = np_(getattr(m, f"p_{gate}"))
        return out
    # lstm(peephole=true): W, R, b, rb in (i, f, c, o) order = torch's (i, f, g, o); p is (i, f, o).
    return {"lstm0.l0.fwd.W": np_(m.x2h.weight), "lstm0.l0.fwd.R": np_(m.h2h.weight),
            "lstm0.l0.fwd.b": np_(m.x2h.bias), "lstm0.l0.fwd.rb": np.zeros(4 * h, np.float32),
            "lstm0.l0.fwd.p": np_(torch.cat([m.p_i, m.p_f, m.p_o]))}


def gru_weights(m: GRUBefore, style: str) -> dict[str, np.ndarray]:
    if style == "recur":
        return {"recur0.dense0.weight": _linear_t(m.x2h.weight), "recur0.dense0.bias": np_(m.x2h.bias),
                "recur0.dense1.weight": _linear_t(m.h2zr.weight), "recur0.dense2.weight": _linear_t(m.h2h.weight)}
    # gru(reset="before"): gates (z, r, h), z the share of the new state, as in the cell above.
    return {"gru0.l0.fwd.W": np_(m.x2h.weight), "gru0.l0.fwd.R": np_(torch.cat([m.h2zr.weight, m.h2h.weight])),
            "gru0.l0.fwd.b": np_(m.x2h.bias), "gru0.l0.fwd.rb": np.zeros(3 * m.hidden, np.float32)}


def elman_weights(m: Elman, style: str) -> dict[str, np.ndarray]:
    if style == "recur":
        return {"recur0.dense0.weight": _linear_t(m.x2h.weight), "recur0.dense0.bias": np_(m.x2h.bias),
                "recur0.dense1.weight": _linear_t(m.h2h.weight)}
    return {"rnn0.l0.fwd.W": np_(m.x2h.weight), "rnn0.l0.fwd.R": np_(m.h2h.weight),
            "rnn0.l0.fwd.b": np_(m.x2h.bias), "rnn0.l0.fwd.rb": np.zeros(m.hidden, np.float32)}


# ---------------------------------------------------------------------------- measuring


def session(model: onnx.ModelProto, optimized_path: str | None = None) -> ort.InferenceSession:
    """A CPU session on the harness's shared pool (one pool for all sessions, spinning off).
    With a pool per session, interleaved sessions fought for the cores: every model ran
    1.4-3x slower than alone."""
    return harness.ort_session(model, optimized_path)


def check_agreement(sessions: dict[str, ort.InferenceSession], feeds: dict, reference: str) -> dict[str, float]:
    """Max abs difference of each model's output from the reference's; raises on a mismatch."""
    outs = {name: s.run(None, feeds)[0] for name, s in sessions.items()}
    ref = outs[reference]
    errors = {}
    for name, out in outs.items():
        np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL, err_msg=f"{name} vs {reference}")
        errors[name] = float(np.max(np.abs(out.astype(np.float64) - ref)))
    return errors


def optimized_nodes(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """Node types after onnxruntime's optimisations: {"main": ..., "Scan#k": its body, ...}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "optimized.onnx")
        session(model, path)
        opt = onnx.load(path)
    out = {"main": dict(Counter(n.op_type for n in opt.graph.node))}
    for k, node in enumerate(n for n in opt.graph.node if n.op_type in ("Scan", "Loop")):
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out[f"{node.op_type}#{k}"] = dict(Counter(n.op_type for n in attr.g.node))
    return out


def scan_lowered(model: onnx.ModelProto) -> bool:
    return any(n.op_type == "Scan" for n in model.graph.node)


@dataclass
class Comparison:
    """One comparison: models on the same weights and inputs, timed together."""

    title: str
    models: dict[str, onnx.ModelProto]
    reference: str
    flops: int  # netc's count for the network
    notes: dict[str, str] = field(default_factory=dict)  # model -> remark (export failures, ...)
    times: dict[str, list[float]] = field(default_factory=dict)  # seconds per round
    errors: dict[str, float] = field(default_factory=dict)
    nodes: dict[str, Any] = field(default_factory=dict)

    def run(self, feeds: dict, args: argparse.Namespace, bench: harness.Bench) -> Comparison:
        """Check, time, and add a row per model (median ms; GFLOP/s, note, error and the
        optimized node types in the JSON)."""
        sessions = {name: session(m) for name, m in self.models.items()}
        self.errors = check_agreement(sessions, feeds, self.reference)
        self.times = harness.interleave_sessions(sessions, feeds, args.rounds, args.warmup)
        for name, model in self.models.items():
            if name.startswith("netc"):
                self.nodes[name] = optimized_nodes(model)
        for name in self.models:
            gflops = self.flops / statistics.median(self.times[name]) / 1e9
            bench.time_row(self.title, f"{name} ms", self.times[name], gflop_s=gflops, note=self.notes.get(name, ""),
                           max_abs_error=self.errors[name], optimized_nodes=self.nodes.get(name))
        for name, note in self.notes.items():
            if name not in self.models:
                bench.note(f"{self.title}, {name}: {note}")
        if args.inspect:
            print_inspect(self)
        return self

    def fastest(self, prefix: str) -> str:
        return min((n for n in self.times if n.startswith(prefix)), key=lambda n: statistics.median(self.times[n]))

    def ratio_row(self, bench: harness.Bench, a: str, b: str, target: float | None = None,
                  metric: str | None = None) -> harness.Row:
        return bench.ratio_row(self.title, metric or f"{a} / {b}", self.times[a], self.times[b], target)


# ---------------------------------------------------------------------------- sections


def torch_exports(module: nn.Module, x: torch.Tensor, args: argparse.Namespace,
                  notes: dict[str, str]) -> dict[str, onnx.ModelProto]:
    models = {}
    for name, dynamo in (("torch (TorchScript)", False), ("torch (dynamo)", True)):
        if dynamo and args.no_dynamo:
            continue
        start = time.perf_counter()
        try:
            models[name] = torch_onnx(module, x, dynamo)
            notes[name] = f"export {time.perf_counter() - start:.1f} s, {len(models[name].graph.node)} nodes"
        except Exception as err:  # an exporter that fails is reported, not fatal
            notes[name] = f"export failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return models


def section_tagger(cell: str, args: argparse.Namespace, x: torch.Tensor) -> Comparison:
    torch.manual_seed(1)
    module = Tagger(cell, args.D, args.H).eval()
    notes: dict[str, str] = {}
    models = torch_exports(module, x, args, notes)
    reset = ', reset="after"' if cell == "gru" else ""
    source = network(f"x -> {cell}({args.H}{reset}, bidirectional=true, layers=2) -> dense({LABELS}) -> softmax",
                     args)
    weights = import_torch_weights(module.rnn, cell, f"{cell}0")
    weights |= {"dense0.weight": _linear_t(module.fc.weight), "dense0.bias": np_(module.fc.bias)}
    model, flops = netc_model(source, weights)
    notes["netc"] = f"{cell} lowered to " + ("Scan" if scan_lowered(model) else f"native {cell.upper()}")
    return Comparison(f"1-2: 2-layer bidir {cell.upper()} tagger", {"netc": model} | models,
                      "torch (TorchScript)", flops, notes)


CUSTOM: dict[str, tuple[type[nn.Module], Callable, list[tuple[str, str, str, str]]]] = {
    # cell: (PyTorch module, weight mapping, [(netc model, style, blocks, output expression)])
    "peephole LSTM": (PeepholeLSTM, peephole_weights, [
        ("netc recur", "recur", PEEPHOLE_BLOCK, "recur(peephole_lstm, x, init=(zeros(N, H), zeros(N, H)), hidden=H)"),
        ("netc recur, per-gate dense", "per-gate", PEEPHOLE_PER_GATE_BLOCK,
         "recur(peephole_lstm, x, init=(zeros(N, H), zeros(N, H)), hidden=H)"),
        ("netc lstm(peephole=true)", "standard", "", "lstm(x, H, peephole=true)"),
    ]),
    "GRU, reset before": (GRUBefore, gru_weights, [
        ("netc recur", "recur", GRU_BLOCK, "recur(gru_before, x, init=zeros(N, H), hidden=H)"),
        ("netc gru(reset=\"before\")", "standard", "", 'gru(x, H, reset="before")'),
    ]),
    "Elman RNN": (Elman, elman_weights, [
        ("netc recur", "recur", ELMAN_BLOCK, "recur(elman, x, init=zeros(N, H), hidden=H)"),
        ("netc rnn", "standard", "", "rnn(x, H)"),
    ]),
}


def section_custom(cell: str, args: argparse.Namespace, x: torch.Tensor) -> Comparison:
    module_type, mapping, variants = CUSTOM[cell]
    torch.manual_seed(2)
    module = module_type(args.D, args.H).eval()
    notes: dict[str, str] = {}
    models = torch_exports(module, x, args, notes)
    flops = 0
    for name, style, blocks, expr in variants:
        expr = expr.replace("N, H)", f"{args.N}, {args.H})").replace("=H)", f"={args.H})").replace("x, H", f"x, {args.H}")
        models[name], f = netc_model(network(expr, args, blocks), mapping(module, style))
        flops = flops or f  # the first netc model's count: the step block as written
        if style == "standard":
            notes[name] = "lowered to " + ("Scan" if scan_lowered(models[name]) else "the native op")
    return Comparison(f"3: {cell}, PyTorch loop", models, "torch (TorchScript)", flops, notes)


STANDARD_CELLS = {"rnn": "rnn(x, H{extra})", "lstm": "lstm(x, H{extra})", "gru": "gru(x, H{extra})",
                  "gru-after": 'gru(x, H, reset="after"{extra})'}
STANDARD_VARIANTS = {"1 layer": "", "bidir 2-layer": ", bidirectional=true, layers=2"}


def section_lowering(cell: str, variant: str, args: argparse.Namespace) -> Comparison:
    expr = STANDARD_CELLS[cell].replace("H", str(args.H), 1).replace("{extra}", STANDARD_VARIANTS[variant] + "{low}")
    models, flops = {}, 0
    for lowering in ("native", "scan", "auto"):
        low = f', lowering="{lowering}"' if lowering != "auto" else ""
        models[f"netc {lowering}"], flops = netc_model(network(expr.replace("{low}", low), args), None)
    auto = "scan" if scan_lowered(models["netc auto"]) else "native"
    return Comparison(f"4: {cell} {variant}", models, "netc native", flops, {"netc auto": f"auto picks {auto}"})


# ---------------------------------------------------------------------------- rows


def tagger_rows(c: Comparison, bench: harness.Bench) -> None:
    c.ratio_row(bench, "netc", c.fastest("torch"), target=1.0, metric=f"netc / fastest export ({c.fastest('torch')})")


def custom_rows(c: Comparison, bench: harness.Bench) -> None:
    best = c.fastest("torch")
    for name in c.models:
        if name.startswith("netc"):
            c.ratio_row(bench, name, best, target=0.5, metric=f"{name} / fastest export ({best})")


def lowering_rows(c: Comparison, bench: harness.Bench) -> None:
    picks = c.notes["netc auto"].split()[-1]
    faster = min(("native", "scan"), key=lambda k: statistics.median(c.times[f"netc {k}"]))
    c.ratio_row(bench, "netc scan", "netc native", metric="scan / native")
    c.ratio_row(bench, "netc auto", f"netc {faster}", target=1.05, metric=f"auto ({picks}) / faster ({faster})")


def print_inspect(c: Comparison) -> None:
    for name, nodes in c.nodes.items():
        print(f"    [{c.title} / {name}] after onnxruntime's optimisations: " + "; ".join(
            f"{g}: " + ", ".join(f"{k} {v}" for k, v in sorted(n.items(), key=lambda kv: -kv[1]))
            for g, n in nodes.items()))


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="1,2,3,4")
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--N", type=int, default=32)
    parser.add_argument("--D", type=int, default=256)
    parser.add_argument("--H", type=int, default=256)
    parser.add_argument("--no-dynamo", action="store_true", help="skip the dynamo exporter")
    parser.add_argument("--inspect", action="store_true", help="print the optimized node types of netc's models")
    harness.add_common_arguments(parser, rounds=40, quick="10 rounds after 1 warm-up run, every exporter kept")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.warmup = 10, 1
    sections = {int(s) for s in args.sections.split(",") if s}
    logging.getLogger("torch").setLevel(logging.ERROR)
    harness.setup_threads(args.threads)  # before the first session, and torch's threads
    bench = harness.Bench("recurrent_vs_torch")
    bench.note(f"T={args.T} N={args.N} D={args.D} H={args.H}; torch {torch.__version__}. Targets: sections 1-2 "
               "netc <= 1.0x the fastest export, section 3 <= 0.5x, section 4 auto within 5% of the faster lowering")
    x_np = np.random.default_rng(0).standard_normal((args.T, args.N, args.D)).astype(np.float32)
    x = torch.from_numpy(x_np)
    feeds = {"x": x_np}
    with torch.no_grad():
        for sec, cell in ((1, "lstm"), (2, "gru")):
            if sec in sections:
                tagger_rows(section_tagger(cell, args, x).run(feeds, args, bench), bench)
        if 3 in sections:
            for cell in CUSTOM:
                custom_rows(section_custom(cell, args, x).run(feeds, args, bench), bench)
        if 4 in sections:
            for cell in STANDARD_CELLS:
                for variant in STANDARD_VARIANTS:
                    lowering_rows(section_lowering(cell, variant, args).run(feeds, args, bench), bench)
    bench.finish(args.json)


if __name__ == "__main__":
    main()
