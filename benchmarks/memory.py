"""Peak resident memory of `netc compile` and `netc verify`, against the model's size.

    python benchmarks/memory.py                           # ResNet-50, ResNet-152, VGG-16; about 3 minutes
    python benchmarks/memory.py --models resnet50 --rounds 3 --json out.json

Each command runs as a child process (`benchmarks/harness.py: run_process`, which reads
the child's ru_maxrss from `wait4`; the child is forked from a small launcher, so the
benchmark's own memory is not counted). The model's size is the size of the `.onnx` file
`netc compile` writes (its weights, almost all of it). `verify` runs one seed (`--seeds
1`: symbolic dims take size 2). Targets: compile <= 1.5x, verify <= 2.5x. For scale, the
rows also give the peak of `netc check` (interpreter, NumPy, onnx and netc loaded; no
weights), which every command pays.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import ROOT, Bench, Estimate, run_process

MODELS = {"resnet50": "resnet50.net", "resnet152": "resnet152.net", "vgg16": "vgg16.net"}
TARGETS = {"compile": 1.5, "verify": 2.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    bench = Bench("memory")
    cli = [sys.executable, "-m", "netc"]
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            source = str(ROOT / "examples" / MODELS[model])
            out = Path(tmp, f"{model}.onnx")
            commands = {"check": [*cli, "check", source], "compile": [*cli, "compile", source, "-o", str(out)]}
            if not args.no_verify:
                commands["verify"] = [*cli, "verify", source, "--seeds", "1"]
            peaks: dict[str, list[int]] = {k: [] for k in commands}
            for _ in range(args.rounds):
                for name, cmd in commands.items():
                    run = run_process(cmd)
                    if run.returncode != 0:
                        raise RuntimeError(f"{model} {name}: exit {run.returncode}: {run.stderr[-400:]}")
                    peaks[name].append(run.max_rss_bytes)
            size = out.stat().st_size
            bench.row(model, "model size", size / 2**20, unit="MiB")
            bench.row(model, "check peak RSS (no weights)", max(peaks["check"]) / 2**20, unit="MiB")
            for name in ("compile", "verify"):
                if name not in peaks:
                    continue
                ratio = Estimate.of([p / size for p in peaks[name]])
                target = TARGETS[name]
                bench.row(model, f"{name} peak RSS / model size", ratio.value, ratio.low, ratio.high,
                          target=f"<= {target}", verdict="PASS" if ratio.high <= target else
                          "FAIL" if ratio.low > target else "TIE", rss_mib=[p / 2**20 for p in peaks[name]])
    bench.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
