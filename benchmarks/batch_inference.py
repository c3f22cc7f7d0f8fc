"""Batch inference throughput: `netc batch` with the local engine against Ray Data with 1 and
2 actors, on ResNet-18 over a folder of image shards.

    python benchmarks/batch_inference.py                      # 2,000 images, 224x224, 3 rounds
    python benchmarks/batch_inference.py --quick              # 400 images, 112x112, 2 rounds
    python benchmarks/batch_inference.py --rows 400 --size 112 --rounds 2 --json out.json

Each configuration runs whole `netc batch` commands in fresh processes (what a user runs),
one at a time, taking turns round by round (benchmarks/harness.py); the figures are rows
per second of the run itself (the command's own timing, without Python's start-up and, for
the ray engine, without starting Ray, which is reported apart: a cluster that is already up
does not pay it). Scaling efficiency is rows/s with 2 workers divided by twice the rows/s
with 1, per round (paired, bootstrap 95% interval). On one machine, the actors split the
same cores, so efficiency measures overhead, not added hardware: docs/scale-out.md turns
the per-actor figure into a prediction for a cluster. Needs the `ray` extra.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import Bench, rotation

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "resnet18.net"
CONFIGS = {  # name: extra `netc batch` arguments
    "local, 1 session": ["--engine", "local", "--workers", "1"],
    "local, 2 sessions": ["--engine", "local", "--workers", "2"],
    "ray, 1 actor": ["--engine", "ray", "--workers", "1"],
    "ray, 2 actors": ["--engine", "ray", "--workers", "2"],
}


def make_data(folder: Path, rows: int, size: int, shard_rows: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for k, start in enumerate(range(0, rows, shard_rows)):
        n = min(shard_rows, rows - start)
        np.save(folder / f"images-{k:04d}.npy", rng.standard_normal((n, 3, size, size)).astype(np.float32))


def run_once(model: Path, data: Path, out: Path, extra: list[str], batch_size: int) -> tuple[float, float]:
    """Seconds of one whole `netc batch` run as the command reports them, and of those the
    seconds it took to start Ray."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "netc", "batch", str(model), str(data), "-o", str(out),
           "--batch-size", str(batch_size), *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    match = re.search(r"in ([0-9.]+) s(?: \(([0-9.]+) s starting Ray\))?", done.stderr)
    if not match:
        return wall, 0.0
    return float(match.group(1)), float(match.group(2) or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--size", type=int, default=224, help="image height and width")
    parser.add_argument("--shard-rows", type=int, default=100, help="rows per input file (one unit each)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four configurations (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="the short setting run_all.py uses: 400 images of "
                        "112x112 in shards of 50, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.size, args.shard_rows, args.rounds = 400, 112, 50, 2
    bench = Bench("batch_inference")
    bench.note(f"ResNet-18, {args.rows} images of 3x{args.size}x{args.size}, batch {args.batch_size}, "
               f"{args.shard_rows} rows per unit, {os.cpu_count()} CPUs; whole processes, one at a time")
    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    startup: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "resnet18.onnx"
        subprocess.run([sys.executable, "-m", "netc", "compile", str(MODEL), "-o", str(model), "--set",
                        f"size={args.size}"], check=True, capture_output=True)
        make_data(tmp / "data", args.rows, args.size, args.shard_rows)
        for _, name in rotation(list(CONFIGS), args.rounds):
            total, start = run_once(model, tmp / "data", tmp / "out", CONFIGS[name], args.batch_size)
            seconds[name].append(total - start)
            startup[name].append(start)
    rates = {name: [args.rows / t for t in ts] for name, ts in seconds.items()}
    case = f"ResNet-18 {args.size}x{args.size}"
    for name in CONFIGS:
        bench.estimate_row(case, f"{name}: rows/s", rates[name], "rows/s", seconds=seconds[name])
        if name.startswith("ray"):
            bench.estimate_row(case, f"{name}: starting Ray", startup[name], "s")
    for engine, one, two in (("local", "local, 1 session", "local, 2 sessions"), ("ray", "ray, 1 actor", "ray, 2 actors")):
        bench.ratio_row(case, f"{engine} scaling efficiency (2 vs 1 workers)", rates[two], [2 * r for r in rates[one]])
    bench.ratio_row(case, "rows/s, ray 2 actors / local 2 sessions", rates["ray, 2 actors"], rates["local, 2 sessions"])
    bench.finish(args.json)


if __name__ == "__main__":
    main()
