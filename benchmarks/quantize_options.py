"""Which of onnxruntime's dynamic quantization options help the MNIST MLP and the BiLSTM
tagger: top-1 agreement and int8 / f32 latency per option (the measurement behind the
choices in `runtime/quantize.py`; not in run_all.py, about 2 minutes).

    python benchmarks/quantize_options.py [--models mnist_mlp,bilstm_tagger] [--json out.json]

Every variant is `quantize_dynamic` on the same f32 model (compiled by `netc compile`,
seeded random weights), after onnxruntime's `quant_pre_process` unless it says otherwise:

- `netc default`: what `netc compile --quantize dynamic` writes: QInt8 weights per tensor,
  the output layer kept f32 (`nodes_to_exclude`);
- `all`: the library's defaults, everything quantized (`--quantize-all`);
- `per_channel`, `reduce_range`, `QUInt8 weights`, `MatMulConstBOnly off`: one option
  changed from `all`;
- `no pre-process`: `all` without `quant_pre_process`;
- MLP, `first layer f32`: `all` with the first dense layer excluded (where the input's
  quantization error enters);
- tagger, `LSTM only`, `LSTM f32` (only the projections quantized), `no Gather` (the
  embedding table left f32): `op_types_to_quantize`.

Agreement on the check data of `benchmarks/quantize.py` (MLP: 2,000 standard normal
rows and 10,000 random 8-bit images; tagger: 6,400 random words), with Wilson 95%
intervals; latency: all variants and the f32 model take turns (harness), the ratio with
its bootstrap interval.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Bench, interleave, ort_session, setup_threads, verdict
from quantize import EXAMPLES, GOAL, MODELS, wilson

from netc.runtime.against_f32 import compare_sessions


def variants(name: str, output_layers: list[str]) -> dict[str, dict]:
    """quantize_dynamic's keyword arguments per variant ("pre" False: no pre-processing)."""
    out = {"netc default": {"nodes_to_exclude": output_layers + [f"{n}_MatMul" for n in output_layers]}, "all": {},
           "per_channel": {"per_channel": True}, "reduce_range": {"reduce_range": True},
           "QUInt8 weights": {"weight_type": "QUInt8"},
           "MatMulConstBOnly off": {"extra_options": {"MatMulConstBOnly": False}}, "no pre-process": {"pre": False}}
    if name == "mnist_mlp":
        out["first layer f32"] = {"nodes_to_exclude": ["dense0", "dense0_MatMul"]}
    else:
        out["LSTM only"] = {"op_types_to_quantize": ["LSTM"]}
        out["LSTM f32"] = {"op_types_to_quantize": ["MatMul", "Gemm"]}
        out["no Gather"] = {"op_types_to_quantize": ["LSTM", "MatMul", "Gemm"]}
    return out


def prepare(name: str, folder: Path) -> None:
    """Write f32.onnx and one file per variant into `folder` (run in a process of its own:
    quant_pre_process makes an onnxruntime session with a pool of its own)."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    from netc.runtime.quantize import output_layers

    logging.getLogger().setLevel(logging.ERROR)
    f32, pre = folder / "f32.onnx", folder / "pre.onnx"
    subprocess.run([sys.executable, "-m", "netc", "compile", str(EXAMPLES / MODELS[name][0]), "-o", str(f32)],
                   check=True, stdout=subprocess.DEVNULL)
    quant_pre_process(str(f32), str(pre), skip_symbolic_shape=True)
    for i, kwargs in enumerate(variants(name, output_layers(onnx.load(str(pre)))).values()):
        kwargs = dict(kwargs)
        source = pre if kwargs.pop("pre", True) else f32
        kwargs["weight_type"] = getattr(QuantType, kwargs.get("weight_type", "QInt8"))
        quantize_dynamic(str(source), str(folder / f"v{i}.onnx"), **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mnist_mlp,bilstm_tagger")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--min-seconds", type=float, default=5.0)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--prepare", nargs=2, metavar=("MODEL", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare[0], Path(args.prepare[1]))
        return
    setup_threads(args.threads)
    bench = Bench("quantize_options")
    for name in args.models.split(","):
        _, _, timed, checks, target = MODELS[name]
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, __file__, "--prepare", name, tmp], check=True)
            names = list(variants(name, []))
            sessions = {"f32": ort_session(Path(tmp, "f32.onnx"))}
            sessions.update({v: ort_session(Path(tmp, f"v{i}.onnx")) for i, v in enumerate(names)})
            feed = timed()
            times = interleave({v: (lambda s=s, f=feed: s.run(None, f)) for v, s in sessions.items()}, args.rounds,
                               min_seconds=args.min_seconds)
            data = {check: feeds() for check, (weights, feeds) in checks.items() if weights is None}
            for v in names:
                bench.ratio_row(name, f"{v}: int8 / f32 latency", times[v], times["f32"], target=target)
                for check, feeds in data.items():
                    out = compare_sessions(sessions["f32"], sessions[v], feeds, name).outputs[0]
                    e = wilson(out.agreement, out.rows)
                    bench.row(name, f"{v}: top-1 agreement, {check} ({out.rows} rows)", e.value, e.low, e.high,
                              target=f">= {GOAL:g}", verdict=verdict(e, GOAL, higher_is_better=True))
    bench.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
