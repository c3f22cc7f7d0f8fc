"""Native ONNX RNN/LSTM/GRU against the Scan lowering, per cell, on onnxruntime CPU.

    python benchmarks/rnn_lowering.py [--T 100 --N 32 --D 256 --H 256] [--threads 2]
                                      [--repeats 30] [--rounds 3] [--cells rnn,lstm,gru]
                                      [--variants plain,bidir,lengths,peephole,reset-after]
                                      [--sizes 32x256,1x256,32x64]   (N x H, with D = H)

For each cell (and variant) it compiles `cell(x, H, lowering="native")` and
`cell(x, H, lowering="scan")` on the same weights, checks that the two agree, and times
`session.run` with `--threads` intra-op threads. The sessions take turns, run by run, so
background load hits them alike; each timing is the median of `--repeats` runs after a
warm-up, and the table shows the median over `--rounds` such rounds. The ratio is
scan / native: below 1 means the Scan lowering is faster. `lowering="auto"` in
compiler/ops/recurrent.py (AUTO_LOWERING, choose_lowering) is set from these tables.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import onnxruntime as ort

import netc
from netc.runtime.session import make_session

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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cells", default="rnn,lstm,gru")
    parser.add_argument("--variants", default="plain")
    parser.add_argument("--sizes", default="", help="N x H pairs (D = H), e.g. 32x256,1x256; "
                        "overrides --N, --D and --H")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",") if item]
    for n, h in sizes or [(args.N, args.H)]:
        if sizes:
            args.N, args.D, args.H = n, h, h
        run_table(args)


def run_table(args: argparse.Namespace) -> None:

    print(f"onnxruntime {ort.__version__}, {platform.machine()}, {args.threads} threads; "
          f"T={args.T} N={args.N} D={args.D} H={args.H}; median of {args.repeats} runs, "
          f"median over {args.rounds} rounds")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.T, args.N, args.D)).astype(np.float32)
    lens = rng.integers(args.T // 2, args.T + 1, args.N).astype(np.int32)
    rows = []
    for variant in args.variants.split(","):
        for cell in args.cells.split(","):
            if not applies(cell, variant):
                continue
            sessions = {}
            for lowering in ("native", "scan"):
                compiled = netc.compile_source(source(cell, args, variant, lowering), seed=0)
                sessions[lowering] = make_session(compiled.model, threads=args.threads).session
            feeds = {"x": x} | ({"lens": lens} if variant == "lengths" else {})
            outs = {k: s.run(None, feeds)[0] for k, s in sessions.items()}
            np.testing.assert_allclose(outs["scan"], outs["native"], rtol=1e-3, atol=1e-4)
            rounds: dict[str, list[float]] = {"native": [], "scan": []}
            for _ in range(args.rounds):
                times: dict[str, list[float]] = {"native": [], "scan": []}
                for _ in range(3):
                    for s in sessions.values():
                        s.run(None, feeds)
                for _ in range(args.repeats):
                    for name, s in sessions.items():
                        start = time.perf_counter()
                        s.run(None, feeds)
                        times[name].append(time.perf_counter() - start)
                for name in rounds:
                    rounds[name].append(statistics.median(times[name]))
            native = statistics.median(rounds["native"]) * 1e3
            scan = statistics.median(rounds["scan"]) * 1e3
            rows.append((cell, variant, native, scan, scan / native))
    print(f"\n{'cell':<6}{'variant':<13}{'native ms':>11}{'scan ms':>10}{'scan/native':>13}  faster")
    for cell, variant, native, scan, ratio in rows:
        print(f"{cell:<6}{variant:<13}{native:>11.2f}{scan:>10.2f}{ratio:>13.2f}  {'scan' if ratio < 1 else 'native'}")


if __name__ == "__main__":
    main()
