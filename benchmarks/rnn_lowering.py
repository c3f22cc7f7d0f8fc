"""Native ONNX RNN/LSTM/GRU against the Scan lowering, per cell, on onnxruntime CPU.

    python benchmarks/rnn_lowering.py [--T 100 --N 32 --D 256 --H 256] [--threads 2]
                                      [--rounds 30] [--cells rnn,lstm,gru] [--json out.json]
                                      [--variants plain,bidir,lengths,peephole,reset-after]
                                      [--sizes 32x256,1x256,32x64]   (N x H, with D = H)

For each cell (and variant) it compiles `cell(x, H, lowering="native")` and
`cell(x, H, lowering="scan")` on the same weights, checks that the two agree, and times
`session.run` on the harness's shared pool (`benchmarks/harness.py`): the sessions take
turns run by run for `--rounds` rounds; medians and the paired ratio scan / native with
bootstrap 95% intervals. Below 1 means the Scan lowering is faster. `lowering="auto"` in
compiler/ops/recurrent.py (AUTO_LOWERING, choose_lowering) is set from these tables.
"""

from __future__ import annotations

import argparse

import numpy as np
from harness import Bench, add_common_arguments, interleave_sessions, ort_session, setup_threads

import netc

VARIANTS = {
    "plain": "",
    "bidir": ", bidirectional=true",
    "lengths": ", lengths=lens",
    "peephole": ", peephole=true",
    "reset-after": ', reset="after"',
}


def source(cell: str, args: argparse.Namespace, variant: str, lowering: str) -> str:
    lens = f"  input lens: i32[{args.N}]\n" if variant == "lengths" else ""
    return (f"network Bench {{\n  input x: f32[{args.T}, {args.N}, {args.D}]\n{lens}"
            f"  output y = {cell}(x, {args.H}{VARIANTS[variant]}, lowering=\"{lowering}\")\n}}\n")


def applies(cell: str, variant: str) -> bool:
    return not ((variant == "peephole" and cell != "lstm") or (variant == "reset-after" and cell != "gru"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--N", type=int, default=32)
    parser.add_argument("--D", type=int, default=256)
    parser.add_argument("--H", type=int, default=256)
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--variants", default="plain")
    parser.add_argument("--sizes", default="", help="N x H pairs (D = H), e.g. 32x256,1x256; "
                        "overrides --N, --D and --H")
    add_common_arguments(parser, rounds=30)
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("rnn_lowering")
    sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",") if item]
    for n, h in sizes or [(args.N, args.H)]:
        if sizes:
            args.N, args.D, args.H = n, h, h
        run_table(args, bench)
    bench.finish(args.json)


def run_table(args: argparse.Namespace, bench: Bench) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.T, args.N, args.D)).astype(np.float32)
    lens = rng.integers(args.T // 2, args.T + 1, args.N).astype(np.int32)
    for variant in args.variants.split(","):
        for cell in args.cells.split(","):
            if not applies(cell, variant):
                continue
            sessions = {}
            for lowering in ("native", "scan"):
                compiled = netc.compile_source(source(cell, args, variant, lowering), seed=0)
                sessions[lowering] = ort_session(compiled.model)
            feeds = {"x": x} | ({"lens": lens} if variant == "lengths" else {})
            outs = {k: s.run(None, feeds)[0] for k, s in sessions.items()}
            np.testing.assert_allclose(outs["scan"], outs["native"], rtol=1e-3, atol=1e-4)
            times = interleave_sessions(sessions, feeds, args.rounds, args.warmup)
            case = f"{cell} {variant} T={args.T} N={args.N} D={args.D} H={args.H}"
            for name in ("native", "scan"):
                bench.time_row(case, f"{name} ms", times[name])
            bench.ratio_row(case, "scan / native", times["scan"], times["native"])


if __name__ == "__main__":
    main()
