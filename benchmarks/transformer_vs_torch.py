"""A 6-layer Transformer encoder from netc's standard library against PyTorch's
nn.TransformerEncoder with the same weights: exported with torch.onnx.export (TorchScript
and dynamo) and run on onnxruntime, and run eagerly under torch.inference_mode (its fused
fast path).

    python benchmarks/transformer_vs_torch.py [--quick] [--threads 2] [--rounds 20]
        [--shapes 1x128 1x512 8x128 8x512] [--layers 6 --d 512 --heads 8 --ff 2048] [--no-dynamo]
        [--json out.json]

Models take batch-first input [N, T, d] (PyTorch's fast path needs batch_first=True):
`encoder(x, layers, heads, d_ff, batch_first=true)` in netc. Every model is made per shape
with static N and T (the TorchScript trace of nn.MultiheadAttention bakes the batch size
into its reshapes even with dynamic axes), so netc's `lowering="auto"` sees the real length. Every model
carries the PyTorch weights (netc through netc.compiler.torch_import, as `netc weights import`).
Before timing, each output must agree with eager PyTorch (rtol 1e-3, atol 1e-4 x the output
scale: six layers of float32 sums in another order).

Latency: the onnxruntime sessions share the harness's pool (benchmarks/harness.py; spinning
off) and torch gets `--threads` threads with OMP_WAIT_POLICY=PASSIVE, since idle spinning
threads of one runtime take the cores from the next model's run. The four models take turns
round by round; ratios netc / other are medians of per-round ratios with bootstrap 95%
intervals. Target: netc <= 1.0x each exported model.

Compile time: netc (parse, elaborate, lower, with the weights streamed from an .npz file
into the written .onnx, as `netc compile` does) against each exporter (trace/export and
write), taking turns: `--compile-rounds` rounds at the first shape (default 3), one at the
others. Target: the dynamo export >= 10x netc's time.
`--quick` (run_all.py): 2 layers, shapes 1x128 and 8x512, 8 rounds, 2 compile rounds;
dynamo included.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import harness  # before torch: it sets OpenMP's wait policy
import numpy as np
import onnx
import torch

import netc
from netc.compiler.torch_import import import_state_dict


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
    result = import_state_dict(state, graph)
    if result.unfilled or result.unmatched_torch:
        raise SystemExit(f"the PyTorch encoder's weights do not fit netc's:\n{result.report()}")
    return result.weights


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["1x128", "1x512", "8x128", "8x512"])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--ff", type=int, default=2048)
    parser.add_argument("--no-dynamo", action="store_true")
    parser.add_argument("--compile-rounds", type=int, default=3, help="compile rounds at the first shape")
    harness.add_common_arguments(parser, rounds=20, quick="2 layers, shapes 1x128 and 8x512, 8 rounds, 2 compile rounds")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.shapes, args.rounds, args.compile_rounds = 2, ["1x128", "8x512"], 8, 2
    harness.setup_threads(args.threads)
    logging.getLogger("torch").setLevel(logging.ERROR)
    bench = harness.Bench("transformer_vs_torch")
    bench.note(f"{args.layers} layers, d={args.d}, heads={args.heads}, ff={args.ff}; torch {torch.__version__}")
    module = torch_module(args)
    exporters = ["torchscript"] + ([] if args.no_dynamo else ["dynamo"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = work / "w.npz"
        np.savez(weights, **netc_weights(module, args))
        for k, shape in enumerate(args.shapes):
            n, t = (int(v) for v in shape.split("x"))
            case = f"N={n} T={t}"
            compiles = {"netc": lambda n=n, t=t: netc_compile(args, weights, work / "netc.onnx", n, t)}
            for name in exporters:
                compiles[name] = lambda name=name, n=n, t=t: export(module, args, work / f"{name}.onnx",
                                                                    name == "dynamo", n, t)
            seconds = harness.interleave(compiles, args.compile_rounds if k == 0 else 1, warmup=0)
            for name, values in seconds.items():
                bench.time_row(case, f"compile {name} s", values, scale=1, unit="s")
            for name in exporters:
                bench.ratio_row(case, f"compile {name} / netc", seconds[name], seconds["netc"],
                                target=10.0 if name == "dynamo" else None, higher_is_better=True)

            sessions = {"netc": harness.ort_session(onnx.load(work / "netc.onnx"))}
            for name in exporters:
                sessions[f"{name} export"] = harness.ort_session(onnx.load(work / f"{name}.onnx"))
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
            runs["torch eager"] = eager
            times = harness.interleave(runs, args.rounds, args.warmup)
            for name, values in times.items():
                bench.time_row(case, f"{name} ms", values)
            for name in runs:
                if name != "netc":
                    bench.ratio_row(case, f"netc / {name}", times["netc"], times[name],
                                    target=1.0 if name.endswith("export") else None)
    bench.finish(args.json)


if __name__ == "__main__":
    main()
