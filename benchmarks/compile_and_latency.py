"""Compile time and onnxruntime latency: netc against torch.onnx.export, in one run.

    python benchmarks/compile_and_latency.py [--quick] [--models resnet50,resnet152,mnist_mlp]
        [--exporters dynamo,torchscript] [--threads 2] [--rounds 100] [--repeats 3] [--json out.json]

For each model:
  compile  `netc.api.compile_to_file(example, out)` (what `netc compile` does: the weights
           streamed into the file), against `torch.onnx.export` of
           the same architecture (benchmarks/torch_models.py, written after torchvision) with
           the dynamo exporter (`dynamo=True`, torch's default) and the TorchScript one
           (`dynamo=False`). Both export a dynamic batch axis, as netc's models have.
           "cold": the first call in a fresh process (imports not counted, one-time set-up
           inside the call counted: what a user waits for in a script; one run each);
           "warm": --repeats rounds in a process that has already compiled/exported a small
           model once, the tools taking turns. Target (ResNet-50): the dynamo export >= 10x
           netc's time.
  latency  onnxruntime CPU on the harness's shared pool (benchmarks/harness.py), --threads
           intra-op threads (default 2), batch 1, all optimisations: netc's model (compiled
           with the PyTorch module's weights) against each exported model on the same
           input, taking turns for --rounds rounds (ResNet-152 half as many); paired ratios
           netc / export with bootstrap 95% intervals. Target (ResNet-50): <= 1.05. Every
           model's output is compared with PyTorch eager (largest difference relative to
           the largest output).
  graphs   the node types of each model after onnxruntime's optimisations
           (SessionOptions.optimized_model_filepath), printed to explain a latency
           difference and recorded in the JSON.

Parameter counts of the two definitions are asserted equal before anything is timed.
`--quick` (run_all.py): ResNet-50 and the MNIST MLP, 2 warm compile rounds, 3 warm-up +
20 latency rounds.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import logging
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # first: it sets OpenMP's wait policy before torch loads
import torch
import torch_models

import netc
from netc import api as netc_api

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
    # What `netc compile` does: each weight drawn just before it is written. (Building the
    # model in memory first, `netc.compile_file(path).save(out)`, is about 2x slower for
    # ResNet-50: protobuf copies and serialises the 98 MB of weights.)
    netc_api.compile_to_file(path, out)


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


def node_types(optimized: Path) -> collections.Counter:
    model = onnx.load(str(optimized), load_external_data=False)
    return collections.Counter(
        (f"{n.domain}." if n.domain and n.domain != "ai.onnx" else "") + n.op_type for n in model.graph.node)


def log(name: str, message: str) -> None:
    print(f"[{name}] {message}", file=sys.stderr, flush=True)


def bench_model(name: str, args: argparse.Namespace, work: Path, bench: harness.Bench, graphs: dict) -> None:
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
    cold: dict[str, list[float]] = {}
    for tool in list(tools):
        try:
            log(name, f"{TOOLS[tool]}: cold (fresh process)")
            cold[tool] = [cold_compile(tool, name, files[TOOLS[tool]])]
        except Exception as err:  # an exporter that fails is reported, not fatal
            bench.note(f"{name}: {TOOLS[tool]} failed: {type(err).__name__}: {str(err)[:300]}")
            files.pop(TOOLS[tool])
            tools.remove(tool)
    log(name, f"warm compiles, {args.repeats} rounds")
    warm = harness.interleave({t: (lambda t=t: compile_with(t, name, files[TOOLS[t]], module)) for t in tools},
                              args.repeats, warmup=0)
    goal = 10.0 if name == "resnet50" else None
    for kind, seconds in (("cold", cold), ("warm", warm)):
        for tool in tools:
            bench.time_row(name, f"compile + save, {kind}: {TOOLS[tool]} s", seconds[tool], scale=1, unit="s")
        for tool in tools[1:]:
            bench.ratio_row(name, f"compile + save, {kind}: {TOOLS[tool]} / netc", seconds[tool], seconds["netc"],
                            target=goal if tool == "dynamo" else None, higher_is_better=True)

    # netc's model with the PyTorch module's weights, so that every output can be compared.
    weights = work / f"{name}.weights.npz"
    np.savez(weights, **torch_models.netc_params(module, graph))
    files["netc"] = work / f"{name}.netc-torch-weights.onnx"
    netc.compile_file(path, weights=weights).save(files["netc"])

    optimized = {k: work / f"{name}.{k}.optimized.onnx" for k in files}
    sessions = {k: harness.ort_session(f, optimized[k]) for k, f in files.items()}
    rounds = args.rounds if name != "resnet152" else max(args.rounds // 2, 5)
    log(name, f"latency: {args.warmup} warm-up + {rounds} rounds")
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    feeds = {k: {s.get_inputs()[0].name: x.numpy()} for k, s in sessions.items()}
    outputs = {k: s.run(None, feeds[k])[0] for k, s in sessions.items()}
    times = harness.interleave_sessions(sessions, feeds, rounds, args.warmup, per_session_feeds=True)
    with torch.no_grad():
        eager = module(x).numpy()
    graphs[name] = {k: node_types(f) for k, f in optimized.items()}
    scale = float(np.abs(eager).max())
    for k in files:
        bench.time_row(name, f"latency: {k} ms", times[k], optimized_nodes=dict(graphs[name][k]))
    for k in files:
        if k != "netc":
            bench.ratio_row(name, f"latency: netc / {k}", times["netc"], times[k],
                            target=1.05 if name == "resnet50" else None)
    for k, out in outputs.items():
        bench.row(name, f"{k}: max |diff| / max |eager|", float(np.abs(out - eager).max()) / scale)


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="default resnet50,resnet152,mnist_mlp")
    parser.add_argument("--exporters", default="dynamo,torchscript")
    parser.add_argument("--compile-rounds", "--repeats", type=int, default=None, dest="repeats",
                        help="warm compile/export rounds per tool (default 3)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the .onnx files in this folder")
    parser.add_argument("--cold", nargs=3, metavar=("TOOL", "MODEL", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of the shared pool (default 2)")
    parser.add_argument("--rounds", "--runs", type=int, default=None, dest="rounds",
                        help="interleaved latency rounds (default 100; ResNet-152 half)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs of each model first (default 10)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="the short setting run_all.py uses: resnet50 and "
                        "mnist_mlp, 2 warm compile rounds, 3 warm-up + 20 latency rounds")
    args = parser.parse_args(argv)
    logging.getLogger("torch").setLevel(logging.ERROR)  # "torchvision is not installed" notes
    if args.cold:  # internal: one cold compile in this fresh process; prints the seconds
        torch.set_num_threads(args.threads)
        tool, name, out = args.cold
        print(compile_with(tool, name, Path(out)))
        return
    harness.setup_threads(args.threads)
    args.models = args.models or ("resnet50,mnist_mlp" if args.quick else "resnet50,resnet152,mnist_mlp")
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.rounds = args.rounds or (20 if args.quick else 100)
    args.warmup = args.warmup if args.warmup is not None else (3 if args.quick else 10)
    args.exporters = [e for e in args.exporters.split(",") if e]
    unknown = [m for m in args.models.split(",") if m not in MODELS] + [e for e in args.exporters if e not in TOOLS]
    if unknown:
        parser.error(f"unknown model or exporter: {', '.join(unknown)}")

    bench = harness.Bench("compile_and_latency")
    bench.note(f"batch 1; torch {torch.__version__}; netc {netc.__version__}")
    graphs: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print("warming up netc and the exporters for the warm timings", file=sys.stderr, flush=True)
        warm_up(work, args.exporters)
        for name in args.models.split(","):
            bench_model(name, args, work, bench, graphs)
    print_graphs(graphs)
    bench.finish(args.json)


if __name__ == "__main__":
    main()
