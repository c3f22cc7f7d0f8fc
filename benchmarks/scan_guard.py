"""What guarding a Scan against 0 steps costs (compiler/ops/scan_guard.py).

    python benchmarks/scan_guard.py [--cells gru,rnn,lstm,recur] [--rounds 40] [--json out.json]

With a symbolic T, netc lowers a Scan inside the else branch of an `If` on T == 0
(onnxruntime rejects a Scan of 0 steps). Each cell (`lowering="scan"`, T=100 at run time,
N=32, D=H=256) is compiled twice from the same source: as netc lowers it, and with the
guard switched off (the Scan and its weight preparation at the top level, as before the
guard). The two sessions take turns on the harness's shared pool; the ratio is guarded /
unguarded (paired, bootstrap 95% interval). `recur` is an Elman step block.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from harness import Bench, add_common_arguments, interleave_sessions, ort_session, setup_threads

import netc
from netc.compiler.ops import scan_guard

SOURCES = {
    "recur": ("block elman(h, x, hidden: int) {\n  return tanh(dense(x, hidden) + dense(h, hidden, bias=false))\n}\n"
              "network A {\n  input x: f32[T, N, 256]\n  output y = recur(elman, x, init=zeros(N, 256), hidden=256)\n}\n"),
}


def source(cell: str) -> str:
    return SOURCES.get(cell) or f'network A {{\n  input x: f32[T, N, 256]\n  output y = {cell}(x, 256, lowering="scan")\n}}\n'


def unguarded(text: str):
    real = scan_guard.guard_empty
    scan_guard.guard_empty = lambda ctx, steps, seq, out_types, emit, empty: emit(ctx)
    try:
        return netc.compile_source(text, seed=0).model
    finally:
        scan_guard.guard_empty = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="gru,rnn,lstm,recur")
    add_common_arguments(parser, rounds=40)
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("scan_guard")
    x = np.random.default_rng(0).standard_normal((100, 32, 256)).astype(np.float32)
    for cell in args.cells.split(","):
        text = source(cell)
        models = {"guarded": netc.compile_source(text, seed=0).model, "unguarded": unguarded(text)}
        assert "If" in {n.op_type for n in models["guarded"].graph.node}
        sessions = {k: ort_session(m) for k, m in models.items()}
        outs = {k: s.run(None, {"x": x})[0] for k, s in sessions.items()}
        np.testing.assert_allclose(outs["guarded"], outs["unguarded"], rtol=1e-4, atol=1e-5)
        times = interleave_sessions(sessions, {"x": x}, args.rounds, args.warmup)
        case = f"{cell} scan T=100 N=32 H=256"
        bench.time_row(case, "guarded ms", times["guarded"])
        bench.time_row(case, "unguarded ms", times["unguarded"])
        bench.ratio_row(case, "guarded / unguarded", times["guarded"], times["unguarded"], target=1.05)
    bench.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
