"""A 6-layer Transformer encoder from netc's standard library against PyTorch's
nn.TransformerEncoder with the same weights: exported with torch.onnx.export (TorchScript
and dynamo) and run on onnxruntime, and run eagerly under torch.inference_mode (its fused
fast path).

    python benchmarks/transformer_vs_torch.py [--quick] [--threads 2] [--repeats 20]
        [--shapes 1x128 1x512 8x128 8x512] [--layers 6 --d 512 --heads 8 --ff 2048] [--no-dynamo]

Models take batch-first input [N, T, d] (PyTorch's fast path needs batch_first=True):
`encoder(x, layers, heads, d_ff, batch_first=true)` in netc. Every model is made per shape
with static N and T (the TorchScript trace of nn.MultiheadAttention bakes the batch size
into its reshapes even with dynamic axes), so netc's `lowering="auto"` sees the real length. Every model
carries the PyTorch weights (netc through netc.compiler.torch_names.import_torch_state_dict).
Before timing, each output must agree with eager PyTorch (rtol 1e-3, atol 1e-4 x the output
scale: six layers of float32 sums in another order).

Fairness on a shared 2-core machine: onnxruntime sessions get `--threads` intra-op threads
with spinning off (`session.intra_op.allow_spinning=0`); torch gets `--threads` threads and
OMP_WAIT_POLICY=PASSIVE (set before torch loads), since idle spinning threads of one runtime
take the cores from the next model's run. Rounds are interleaved, the order rotating;
ratios are medians of per-round ratios with bootstrap 95% intervals (benchmarks/timing.py).
Absolute times on a shared machine are noisy; the ratios are the result.

Compile time: netc (parse, elaborate, lower, with the weights from an .npz file, and write
the .onnx) against each exporter (trace/export and write): the median of 3 at the first
shape, one run at the others.
`--quick`: 2 layers, shapes 1x128 and 1x512, 8 rounds, no dynamo.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (and its OpenMP) loads

import argparse
import contextlib
import io
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import onnx
import torch

import netc
from benchmarks.timing import Ratio, ort_session, time_interleaved
from netc.compiler.torch_names import import_torch_state_dict


def netc_source(args: argparse.Namespace, n: int | str = "N", t: int | str = "T") -> str:
    return (f'import "std/transformer.net"\nnetwork Encoder {{\n  input x: f32[{n}, {t}, {args.d}]\n'
            f"  output y = encoder(x, {args.layers}, {args.heads}, {args.ff}, batch_first=true)\n}}\n")


def torch_module(args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(args.d, args.heads, args.ff, dropout=0.1, batch_first=True)
    return torch.nn.TransformerEncoder(layer, args.layers, enable_nested_tensor=False).eval()


def netc_weights(module: torch.nn.Module, args: argparse.Namespace) -> dict[str, np.ndarray]:
    graph = netc.compile_source(netc_source(args)).graph  # names and kinds only
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    prefixes = {f"encoder0.encoder_layer{i}.": f"layers.{i}." for i in range(args.layers)}
    return import_torch_state_dict(graph, state, prefixes)


@contextlib.contextmanager
def quiet():
    logging.disable(logging.WARNING)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
    logging.disable(logging.NOTSET)


def export(module: torch.nn.Module, args: argparse.Namespace, path: Path, dynamo: bool, n: int, t: int) -> None:
    # Static shapes: the TorchScript trace of nn.MultiheadAttention bakes the batch size into
    # its reshapes even when asked for dynamic axes.
    x = torch.randn(n, t, args.d)
    with quiet():
        if dynamo:
            torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=True,
                              external_data=False)
        else:
            torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False)


def netc_compile(args: argparse.Namespace, weights: Path, out: Path, n: int, t: int) -> None:
    # What `netc compile` does: the weights streamed from the file into the model as written.
    netc.api.compile_to_file("encoder.net", out, source=netc_source(args, n, t), weights=weights)


def median_time(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--shapes", nargs="+", default=["1x128", "1x512", "8x128", "8x512"])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--ff", type=int, default=2048)
    parser.add_argument("--no-dynamo", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.shapes, args.repeats, args.no_dynamo = 2, ["1x128", "1x512"], 8, True
    torch.set_num_threads(args.threads)
    print(f"# {' '.join(sys.argv)}")
    print(f"# layers={args.layers} d={args.d} heads={args.heads} ff={args.ff} threads={args.threads} "
          f"repeats={args.repeats} torch {torch.__version__} OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    module = torch_module(args)
    exporters = ["torchscript"] + ([] if args.no_dynamo else ["dynamo"])
    print("\nlatency, ms (median, p90); ratio = netc / other: median of per-round ratios [95% CI]")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = work / "w.npz"
        np.savez(weights, **netc_weights(module, args))
        for k, shape in enumerate(args.shapes):
            n, t = (int(v) for v in shape.split("x"))
            compile_runs = 3 if k == 0 else 1
            compile_times = {"netc": median_time(
                lambda n=n, t=t: netc_compile(args, weights, work / "netc.onnx", n, t), compile_runs)}
            for name in exporters:
                compile_times[name] = median_time(
                    lambda name=name, n=n, t=t: export(module, args, work / f"{name}.onnx", name == "dynamo", n, t),
                    compile_runs)
            print(f"N={n} T={t:4d} compile s (median of {compile_runs}): "
                  + ", ".join(f"{key} {v:.2f}" for key, v in compile_times.items())
                  + "".join(f"; {name}/netc {compile_times[name] / compile_times['netc']:.1f}x"
                            for name in exporters))
            sessions = {"netc": ort_session(onnx.load(work / "netc.onnx"), args.threads)}
            for name in exporters:
                sessions[f"export-{name}"] = ort_session(onnx.load(work / f"{name}.onnx"), args.threads)
            x = np.random.default_rng(0).standard_normal((n, t, args.d)).astype(np.float32)
            tx = torch.from_numpy(x)
            with torch.inference_mode():
                want = module(tx).numpy()
            scale = max(float(np.abs(want).max()), 1.0)
            for name, sess in sessions.items():
                np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-3, atol=1e-4 * scale,
                                           err_msg=name)

            def eager(tx=tx):
                with torch.inference_mode():
                    return module(tx)

            runs = {name: (lambda sess=sess, x=x: sess.run(None, {"x": x})) for name, sess in sessions.items()}
            runs["torch-eager"] = eager
            stats = time_interleaved(runs, args.repeats)
            for name, st in stats.items():
                ratio = "" if name == "netc" else f"  netc/{name} {Ratio.of(stats['netc'], st)}"
                print(f"N={n} T={t:4d} {name:18s} {st.median:9.2f} {st.p90:9.2f}{ratio}")


if __name__ == "__main__":
    main()
