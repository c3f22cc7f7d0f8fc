"""What hoisting step-invariant work out of a `recur` body gains, on onnxruntime CPU.

    python benchmarks/recur_hoisting.py [--T 100 --N 32,1 --D 256 --H 256] [--threads 2]
                                        [--rounds 30] [--json out.json]

An Elman recurrence written as a step block, h_t = tanh(dense(x_t) + dense(h_{t-1})),
compiled twice from the same source and weights: with the full pass pipeline (the input
projection dense(x_t) is hoisted out of the Scan and becomes one MatMul over [T, N, D]),
and without the hoisting pass (the projection runs inside the body, one small Gemm per
step). It checks that the two agree, then times `session.run` on the harness's shared
pool (`benchmarks/harness.py`), the sessions taking turns run by run for `--rounds`
rounds. The ratio (paired, bootstrap 95% interval) is hoisted / not hoisted: below 1 means hoisting is faster. `--N` takes a list: one line per
batch size (at N=1 the per-step projection is a matrix-vector product, and hoisting turns
T of them into one matrix product).
"""

from __future__ import annotations

import argparse

import numpy as np
from harness import Bench, add_common_arguments, interleave_sessions, ort_session, setup_threads

import netc
from netc.compiler.lowering import lower_graph
from netc.compiler.params import materialise
from netc.compiler.passes import PIPELINE, hoist_loop_invariants

SOURCE = """
block elman(h, x, hidden: int) {
  return tanh(dense(x, hidden) + dense(h, hidden, bias=false))
}
network Elman {
  input x: f32[T, N, D]
  output hs = recur(elman, x, init=zeros(N, H), hidden=H)
}
"""


def compile_model(args: argparse.Namespace, hoist: bool):
    text = SOURCE.replace("D]", f"{args.D}]").replace("N, H)", f"N, {args.H})").replace("=H)", f"={args.H})")
    from netc.compiler.elaborate import NetworkOptions, choose_network, elaborate_network

    program = netc.load("elman.net", text)
    graph = elaborate_network(program, choose_network(program, None), NetworkOptions())
    for run_pass in PIPELINE:
        if hoist or run_pass is not hoist_loop_invariants:
            graph = run_pass(graph)
    return lower_graph(graph, materialise(graph, seed=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--N", default="32,1", help="batch sizes, comma-separated")
    parser.add_argument("--D", type=int, default=256)
    parser.add_argument("--H", type=int, default=256)
    add_common_arguments(parser, rounds=30)
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("recur_hoisting")
    sessions = {name: ort_session(compile_model(args, hoist)) for name, hoist in (("hoisted", True), ("in-loop", False))}
    for batch in (int(n) for n in args.N.split(",")):
        x = np.random.default_rng(0).standard_normal((args.T, batch, args.D)).astype(np.float32)
        feeds = {"x": x}
        outs = {name: s.run(None, feeds)[0] for name, s in sessions.items()}
        np.testing.assert_allclose(outs["hoisted"], outs["in-loop"], rtol=1e-4, atol=1e-5)
        times = interleave_sessions(sessions, feeds, args.rounds, args.warmup)
        case = f"Elman recur T={args.T} N={batch} D={args.D} H={args.H}"
        for name in sessions:
            bench.time_row(case, f"{name} ms", times[name])
        bench.ratio_row(case, "hoisted / in-loop", times["hoisted"], times["in-loop"])
    bench.finish(args.json)


if __name__ == "__main__":
    main()
