"""Compile time and onnxruntime latency: netc against torch.onnx.export, in one run.

    python benchmarks/compile_and_latency.py [--quick] [--models resnet50,resnet152,mnist_mlp]

For each model:
  compile  `netc.compile_file(example)` + saving the .onnx, against `torch.onnx.export` of
           the same architecture (benchmarks/torch_models.py, written after torchvision) with
           the dynamo exporter (`dynamo=True`, torch's default) and the TorchScript one
           (`dynamo=False`). Both export a dynamic batch axis, as netc's models have.
           "cold": the first call in a fresh process (imports not counted, one-time set-up
           inside the call counted: what a user waits for in a script); "warm": the median
           of --repeats calls in a process that has already compiled/exported once.
  latency  onnxruntime CPU, --threads intra-op threads (default 2), batch 1, all
           optimisations: netc's model (compiled with the PyTorch module's weights) against
           each exported model on the same input; the sessions take turns run by run, so
           background load hits them alike. Every model's output is compared with PyTorch
           eager (largest difference relative to the largest output).
  graphs   the node types of each model after onnxruntime's optimisations
           (SessionOptions.optimized_model_filepath), to explain a latency difference.

Ratios are netc / torch: below 1 means netc is faster. Parameter counts of the two
definitions are asserted equal before anything is timed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import io
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # first: it sets OpenMP's wait policy before torch loads
import torch
import torch_models

import netc

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# name -> (example file, torch constructor, input shape at batch 1, input name, output name)
MODELS: dict[str, tuple[str, Callable[[], torch.nn.Module], tuple[int, ...], str, str]] = {
    "resnet50": ("resnet50.net", torch_models.resnet50, (1, 3, 224, 224), "image", "logits"),
    "resnet152": ("resnet152.net", torch_models.resnet152, (1, 3, 224, 224), "image", "logits"),
    "mnist_mlp": ("mnist_mlp.net", torch_models.mnist_mlp, (1, 784), "image", "probs"),
}
TOOLS = {"netc": "netc", "dynamo": "torch-dynamo", "torchscript": "torch-torchscript"}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress chatter and warnings (errors still raise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield


def netc_compile(path: Path, out: Path) -> None:
    netc.compile_file(path).save(out)


def torch_export(module: torch.nn.Module, x: torch.Tensor, out: Path, dynamo: bool, in_name: str,
                 out_name: str) -> None:
    with quiet():
        if dynamo:
            batch = torch.export.Dim("N")
            torch.onnx.export(module, (x,), str(out), dynamo=True, input_names=[in_name],
                              output_names=[out_name], dynamic_shapes=({0: batch},))
        else:
            torch.onnx.export(module, (x,), str(out), dynamo=False, input_names=[in_name],
                              output_names=[out_name], dynamic_axes={in_name: {0: "N"}, out_name: {0: "N"}})


def compile_with(tool: str, name: str, out: Path, module: torch.nn.Module | None = None) -> float:
    """Seconds for one compile (netc) or export (torch) of model `name` to `out`."""
    example, build, shape, in_name, out_name = MODELS[name]
    if tool == "netc":
        return timed(lambda: netc_compile(EXAMPLES / example, out))
    module = module if module is not None else build().eval()
    x = torch.zeros(*shape)
    return timed(lambda: torch_export(module, x, out, tool == "dynamo", in_name, out_name))


def cold_compile(tool: str, name: str, out: Path) -> float:
    """The first compile/export in a fresh process (its imports are not counted)."""
    cmd = [sys.executable, __file__, "--cold", tool, name, str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
    return float(result.stdout.strip().splitlines()[-1])


def warm_up(work: Path, exporters: list[str]) -> None:
    """One small compile and export per tool before the warm timings, so that one-time
    costs (netc's parser tables, the exporters' lazy imports and registries) are left out."""
    (work / "warmup.net").write_text("network W {\n  input x: f32[N, 4]\n  output y = dense(x, 2)\n}\n")
    netc_compile(work / "warmup.net", work / "warmup.netc.onnx")
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU()).eval()
    for exporter in exporters:
        with contextlib.suppress(Exception):
            torch_export(module, torch.zeros(1, 1, 8, 8), work / f"warmup.{exporter}.onnx", exporter == "dynamo",
                         "x", "y")


def session(model_path: Path, threads: int, optimized: Path | None = None) -> ort.InferenceSession:
    """A session on the harness's shared pool (`threads` intra-op threads, set up in main)."""
    return harness.ort_session(model_path, optimized)


def latencies(sessions: dict[str, ort.InferenceSession], x: np.ndarray, warmup: int, runs: int
              ) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per run of each session, taking turns run by run; and each one's output."""
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
    outputs = {k: s.run(None, feeds[k])[0] for k, s in sessions.items()}
    for _ in range(warmup):
        for k, s in sessions.items():
            s.run(None, feeds[k])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):
        for k, s in sessions.items():
            start = time.perf_counter()
            s.run(None, feeds[k])
            times[k].append(time.perf_counter() - start)
    return times, outputs


def node_types(optimized: Path) -> collections.Counter:
    model = onnx.load(str(optimized), load_external_data=False)
    return collections.Counter(
        (f"{n.domain}." if n.domain and n.domain != "ai.onnx" else "") + n.op_type for n in model.graph.node)


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def log(name: str, message: str) -> None:
    print(f"[{name}] {message}", file=sys.stderr, flush=True)


def bench_model(name: str, args: argparse.Namespace, work: Path, rows: list, graphs: dict) -> None:
    example, build, shape, _, _ = MODELS[name]
    path = EXAMPLES / example
    log(name, "checking parameter counts")
    (graph,) = netc.check_file(path)
    netc_count = sum(p.size for p in graph.params if p.trainable)
    torch.manual_seed(0)
    module = build().eval()
    torch_count = torch_models.trainable_count(module)
    if netc_count != torch_count:
        raise SystemExit(f"{name}: netc has {netc_count:,} trainable parameters, PyTorch {torch_count:,}")

    tools = ["netc", *args.exporters]
    files = {TOOLS[t]: work / f"{name}.{t}.onnx" for t in tools}
    cold: dict[str, float] = {}
    warm: dict[str, float] = {}
    for tool in tools:
        key = TOOLS[tool]
        try:
            log(name, f"{key}: cold (fresh process), then warm x{args.repeats}")
            cold[key] = cold_compile(tool, name, files[key])
            warm[key] = statistics.median(compile_with(tool, name, files[key], module) for _ in range(args.repeats))
        except Exception as err:  # an exporter that fails is reported, not fatal
            log(name, f"{key} failed: {type(err).__name__}: {str(err)[:300]}")
            files.pop(key)

    # netc's model with the PyTorch module's weights, so that every output can be compared.
    weights = work / f"{name}.weights.npz"
    np.savez(weights, **torch_models.netc_params(module, graph))
    files["netc"] = work / f"{name}.netc-torch-weights.onnx"
    netc.compile_file(path, weights=weights).save(files["netc"])

    optimized = {k: work / f"{name}.{k}.optimized.onnx" for k in files}
    sessions = {k: session(f, args.threads, optimized[k]) for k, f in files.items()}
    runs = args.runs if name != "resnet152" else max(args.runs // 2, 5)
    log(name, f"latency: {args.warmup} warm-up + {runs} runs per model")
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    times, outputs = latencies(sessions, x.numpy(), args.warmup, runs)
    with torch.no_grad():
        eager = module(x).numpy()
    graphs[name] = {k: node_types(f) for k, f in optimized.items()}

    rows.append((name, "compile + save, cold (s)", cold))
    rows.append((name, "compile + save, warm (s)", warm))
    rows.append((name, "latency median (ms)", {k: statistics.median(v) * 1e3 for k, v in times.items()}))
    rows.append((name, "latency p90 (ms)", {k: p90(v) * 1e3 for k, v in times.items()}))
    scale = float(np.abs(eager).max())
    rows.append((name, "max |diff| / max |eager|", {k: float(np.abs(o - eager).max()) / scale
                                                    for k, o in outputs.items()}))


def print_table(rows: list, exporters: list[str]) -> None:
    head = ["model", "metric", "netc"]
    for e in exporters:
        head += [f"torch {e}", f"netc/{e}"]
    table = [head]
    for model, metric, values in rows:
        ratio = "diff" not in metric
        line = [model, metric, f"{values.get('netc', float('nan')):.4g}"]
        for e in exporters:
            v = values.get(TOOLS[e])
            line += ["failed", "-"] if v is None else [f"{v:.4g}", f"{values['netc'] / v:.3f}" if ratio else ""]
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for i, r in enumerate(table):
        print("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_targets(rows: list) -> None:
    values = {(model, metric): v for model, metric, v in rows}
    print()
    for kind in ("cold", "warm"):
        times = values.get(("resnet50", f"compile + save, {kind} (s)"), {})
        if "torch-dynamo" in times and "netc" in times:
            speedup = times["torch-dynamo"] / times["netc"]
            verdict = "met" if speedup >= 10 else "NOT met"
            print(f"target: ResNet-50 compile >= 10x faster than the dynamo export ({kind}): "
                  f"{speedup:.1f}x ({verdict})")
    latency = values.get(("resnet50", "latency median (ms)"), {})
    for exporter in ("torch-dynamo", "torch-torchscript"):
        if exporter in latency:
            ratio = latency["netc"] / latency[exporter]
            verdict = "met" if ratio <= 1.05 else "NOT met"
            print(f"target: ResNet-50 latency <= 1.05x the {exporter} model's: {ratio:.3f}x ({verdict})")


def print_graphs(graphs: dict) -> None:
    for model, by_file in graphs.items():
        kinds = sorted(set().union(*by_file.values()))
        names = list(by_file)
        print(f"\n{model}: nodes after onnxruntime optimisation (level ALL)")
        print("  " + "op".ljust(38) + "".join(n.rjust(18) for n in names))
        for kind in kinds:
            counts = [by_file[n].get(kind, 0) for n in names]
            mark = "" if len(set(counts)) == 1 else "   <- differs"
            print("  " + kind.ljust(38) + "".join(str(c).rjust(18) for c in counts) + mark)
        print("  " + "total".ljust(38) + "".join(str(sum(by_file[n].values())).rjust(18) for n in names))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 warm compile each, 3 + 10 latency runs")
    parser.add_argument("--models", default="resnet50,resnet152,mnist_mlp")
    parser.add_argument("--exporters", default="dynamo,torchscript")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None, help="warm compiles/exports per tool (median)")
    parser.add_argument("--runs", type=int, default=None, help="timed latency runs per model")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the .onnx files in this folder")
    parser.add_argument("--cold", nargs=3, metavar=("TOOL", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("torch").setLevel(logging.ERROR)  # "torchvision is not installed" notes
    if args.cold:  # internal: one cold compile in this fresh process; prints the seconds
        tool, name, out = args.cold
        print(compile_with(tool, name, Path(out)))
        return
    harness.setup_threads(args.threads)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.runs = args.runs or (10 if args.quick else 100)
    args.warmup = args.warmup if args.warmup is not None else (3 if args.quick else 10)
    args.exporters = [e for e in args.exporters.split(",") if e]
    unknown = [m for m in args.models.split(",") if m not in MODELS] + [e for e in args.exporters if e not in TOOLS]
    if unknown:
        parser.error(f"unknown model or exporter: {', '.join(unknown)}")

    rows: list = []
    graphs: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print("warming up netc and the exporters for the warm timings", file=sys.stderr, flush=True)
        warm_up(work, args.exporters)
        for name in args.models.split(","):
            bench_model(name, args, work, rows, graphs)

    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])
    print(f"\n$ {cmd}")
    print(f"{datetime.date.today()}  {platform.machine()}, {os.cpu_count()} cores; "
          f"netc {netc.__version__}, torch {torch.__version__}, onnx {onnx.__version__}, "
          f"onnxruntime {ort.__version__}; {args.threads} threads, batch 1; warm compile: median of "
          f"{args.repeats}; latency: {args.warmup} warm-up + {args.runs} runs "
          f"(resnet152: {max(args.runs // 2, 5)}), sessions taking turns\n")
    print_table(rows, args.exporters)
    print_targets(rows)
    print_graphs(graphs)


if __name__ == "__main__":
    main()
