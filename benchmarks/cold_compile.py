"""Cold compile: a whole `netc compile` process against `torch.onnx.export(dynamo=True)`.

    python benchmarks/cold_compile.py                    # ResNet-50, ResNet-152, VGG-16; 7 rounds
    python benchmarks/cold_compile.py --models resnet50 --rounds 20 --json out.json

For each model, in turns round by round (`benchmarks/harness.py`, one child process at a
time, after one untimed run of each):

- **netc**: `python -m netc compile examples/<model>.net -o <tmp>.onnx`, the whole
  process: interpreter start, imports, parsing, checking, drawing the seeded weights,
  lowering and writing the file. Its peak resident memory is recorded too.
- **netc check**: the same without the weights (`python -m netc check`): the difference
  is what producing and writing the parameters costs.
- **torch dynamo**: a fresh process that imports torch, builds the same architecture
  (`benchmarks/torch_models.py`) and calls `torch.onnx.export(..., dynamo=True)` with a
  dynamic batch axis. Two times are kept: the export call alone (what the ratio uses:
  the imports and the module construction are not counted, which favours torch) and the
  whole process.

netc's modules are compiled to bytecode first (`compileall`), as pip does when it installs
netc from a wheel and as an editable install does on its first import: where
PYTHONDONTWRITEBYTECODE is set, an editable install would otherwise compile its modules
from source in every process (about 0.1 s), which no installed netc does. torch, installed
by pip, has its bytecode already.

With `--alone-rounds K`, netc is also timed K times in a row with no export in between
(the torch children, each using gigabytes, slow the netc process that follows them).
Ratios are per round (both ran in the same round), with bootstrap 95% intervals. Targets:
netc's whole process <= 0.6 s for ResNet-50, and torch's export call / netc's whole
process >= 10 for every model.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import warnings
from pathlib import Path

from harness import ROOT, Bench, Estimate, interleave_processes

MODELS = {"resnet50": "resnet50.net", "resnet152": "resnet152.net", "vgg16": "vgg16.net"}


def export_child(model: str, out: str) -> None:
    """Run in the child: build the torch module, export it, print the export's seconds."""
    import torch
    import torch_models

    module = getattr(torch_models, model)().eval()
    x = torch.zeros(1, 3, 224, 224)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        torch.onnx.export(module, (x,), out, dynamo=True, input_names=["image"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("N")},))
        seconds = time.perf_counter() - start
    print(f"export_seconds {seconds!r}")


def compile_bytecode() -> None:
    """Write the bytecode of netc's own modules, as installing it with pip does."""
    import compileall

    for folder in ("netc", "compiler", "dsl", "runtime"):
        if not compileall.compile_dir(ROOT / folder, quiet=1, workers=0):
            raise SystemExit(f"could not compile {folder} to bytecode")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true", help="time netc alone")
    parser.add_argument("--alone-rounds", type=int, default=0,
                        help="also time this many netc compiles in a row, with no export between them")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--export-child", nargs=2, metavar=("MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(*args.export_child)
        return
    compile_bytecode()
    bench = Bench("cold_compile")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            netc_cmd = [sys.executable, "-m", "netc", "compile", str(ROOT / "examples" / MODELS[model]),
                        "-o", f"{tmp}/{model}.netc.onnx"]
            # `netc check` does all but the weights (start, imports, parse, elaborate): what
            # compile adds to it is drawing, lowering and writing the parameters.
            commands = {"netc": netc_cmd, "check": [sys.executable, "-m", "netc", "check",
                                                    str(ROOT / "examples" / MODELS[model])]}
            if not args.no_torch:
                commands["dynamo"] = [sys.executable, __file__, "--export-child", model, f"{tmp}/{model}.dynamo.onnx"]
            runs = interleave_processes(commands, args.rounds)
            netc_s = [r.seconds for r in runs["netc"]]
            e = Estimate.of(netc_s)
            bench.row(model, "netc compile, whole process", e.value, e.low, e.high, "s",
                      target="<= 0.6" if model == "resnet50" else "",
                      verdict=("PASS" if e.high <= 0.6 else "FAIL" if e.low > 0.6 else "TIE")
                      if model == "resnet50" else "", min=min(netc_s), samples=netc_s)
            check_s = [r.seconds for r in runs["check"]]
            bench.time_row(model, "netc check, whole process (no weights)", check_s, 1.0, "s", samples=check_s)
            size = Path(f"{tmp}/{model}.netc.onnx").stat().st_size
            rss = [r.max_rss_bytes / size for r in runs["netc"]]
            e = Estimate.of(rss)
            bench.row(model, "netc compile peak RSS / model size", e.value, e.low, e.high,
                      target="<= 1.5", verdict="PASS" if e.high <= 1.5 else "FAIL" if e.low > 1.5 else "TIE",
                      model_bytes=size, rss_bytes=[r.max_rss_bytes for r in runs["netc"]])
            if args.alone_rounds:
                alone = [r.seconds for r in interleave_processes({"netc": netc_cmd}, args.alone_rounds)["netc"]]
                e = Estimate.of(alone)
                bench.row(model, f"netc compile, whole process, {len(alone)} in a row (min {min(alone):.2f} s)",
                          e.value, e.low, e.high, "s", target="<= 0.6" if model == "resnet50" else "",
                          verdict=("PASS" if e.high <= 0.6 else "FAIL" if e.low > 0.6 else "TIE")
                          if model == "resnet50" else "", samples=alone)
            if args.no_torch:
                continue
            export_s = [float(r.stdout.split()[-1]) for r in runs["dynamo"]]
            whole_s = [r.seconds for r in runs["dynamo"]]
            bench.time_row(model, "torch dynamo export call", export_s, 1.0, "s", samples=export_s)
            bench.time_row(model, "torch dynamo, whole process", whole_s, 1.0, "s", samples=whole_s)
            bench.ratio_row(model, "dynamo export call / netc whole process", export_s, netc_s, target=10,
                            higher_is_better=True)
    bench.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
