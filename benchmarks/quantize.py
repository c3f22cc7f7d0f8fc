"""int8 models against their f32 originals: latency ratio and accuracy.

    python benchmarks/quantize.py                        # MLP, BiLSTM tagger, ResNet-50; about 4 minutes
    python benchmarks/quantize.py --models mnist_mlp --rounds 100 --json out.json

Each model is compiled by `netc compile` (seeded weights) and by `netc compile --quantize`
(`runtime/quantize.py`, onnxruntime.quantization):

| model | quantization | timed input | target |
|---|---|---|---|
| `examples/mnist_mlp.net` | dynamic | batch 32 | int8 / f32 <= 0.5 |
| `examples/bilstm_tagger.net` | dynamic | T=50, N=32 | <= 0.5 |
| `examples/resnet50.net` | static (QDQ, per channel), calibrated on 32 random images | batch 1 | <= 0.6 |

Latency: the f32 and int8 sessions take turns on the harness's shared pool
(`benchmarks/harness.py`); the ratio is the median of per-round ratios with a bootstrap
95% interval. Accuracy (`runtime/against_f32.py`, what `netc verify --against-f32`
prints), on random inputs drawn apart from the calibration data: the largest absolute
error, the largest error relative to the f32 output's largest magnitude, and top-1
agreement (argmax over the class axis; target >= 0.99).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from harness import ROOT, Bench, interleave_sessions, ort_session, setup_threads

from netc.runtime.against_f32 import compare_sessions

EXAMPLES = ROOT / "examples"


def _mlp(seed: int, n: int = 32) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((n, 784)).astype(np.float32)}


def _tagger(seed: int) -> dict[str, np.ndarray]:
    return {"words": np.random.default_rng(seed).integers(0, 5000, (50, 32)).astype(np.int64)}


def _images(seed: int, n: int = 1) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((n, 3, 224, 224)).astype(np.float32)}


MODELS = {
    "mnist_mlp": ("mnist_mlp.net", "dynamic", lambda: _mlp(0), [_mlp(100 + s, 250) for s in range(8)], 0.5),
    "bilstm_tagger": ("bilstm_tagger.net", "dynamic", lambda: _tagger(0), [_tagger(100 + s) for s in range(4)], 0.5),
    "resnet50": ("resnet50.net", "static", lambda: _images(0), [_images(100 + s, 8) for s in range(8)], 0.6),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("quantize")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            example, mode, timed, checks, target = MODELS[name]
            f32, int8 = Path(tmp, f"{name}.onnx"), Path(tmp, f"{name}.int8.onnx")
            # Compiled and quantized by the CLI in processes of their own: onnxruntime's
            # calibration makes sessions with a pool of their own, which this process's
            # shared pool forbids.
            cli = [sys.executable, "-m", "netc", "compile", str(EXAMPLES / example)]
            subprocess.run([*cli, "-o", str(f32)], check=True, stdout=subprocess.DEVNULL)
            quantize = ["--quantize", mode]
            if mode == "static":
                images = np.random.default_rng(1).standard_normal((32, 3, 224, 224)).astype(np.float32)
                np.savez(Path(tmp, "calibration.npz"), image=images)
                quantize += ["--calibrate", str(Path(tmp, "calibration.npz"))]
            subprocess.run([*cli, "-o", str(int8), *quantize], check=True, stdout=subprocess.DEVNULL)
            sessions = {"f32": ort_session(f32), "int8": ort_session(int8)}
            times = interleave_sessions(sessions, timed(), args.rounds, args.warmup)
            case = f"{name} ({mode})"
            bench.time_row(case, "f32 ms", times["f32"])
            bench.time_row(case, "int8 ms", times["int8"])
            bench.ratio_row(case, "int8 / f32 latency", times["int8"], times["f32"], target=target)
            report = compare_sessions(sessions["f32"], sessions["int8"], checks, name)
            for out in report.outputs:
                bench.row(case, f"{out.name}: max abs err", out.max_abs)
                bench.row(case, f"{out.name}: max rel err (of max |f32|)", out.max_rel)
                if out.agreement is not None:
                    v = "PASS" if out.agreement >= 0.99 else "FAIL"
                    bench.row(case, f"{out.name}: top-1 agreement ({out.rows} rows)", out.agreement,
                              target=">= 0.99", verdict=v)
    bench.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
