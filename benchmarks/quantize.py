"""int8 models against their f32 originals: latency ratio and accuracy.

    python benchmarks/quantize.py                        # MLP, BiLSTM tagger, ResNet-50; about 5 minutes
    python benchmarks/quantize.py --models mnist_mlp --rounds 100 --json out.json

Each model is compiled by `netc compile` (seeded weights) and twice by `netc compile
--quantize` (`runtime/quantize.py`, onnxruntime.quantization): `int8` is the default, which
keeps the layer that computes the output (the classifier's last dense layer) in f32;
`int8 all` adds `--quantize-all`, which quantizes it too (netc's default before).

| model | quantization | timed input | target |
|---|---|---|---|
| `examples/mnist_mlp.net` | dynamic | batch 32 | int8 / f32 <= 0.5 |
| `examples/bilstm_tagger.net` | dynamic | T=50, N=32 | <= 0.5 |
| `examples/resnet50.net` | static (QDQ, per channel), calibrated on 32 random images | batch 1 | <= 0.6 |

Latency: the three sessions take turns on the harness's shared pool
(`benchmarks/harness.py`), for at least `--rounds` rounds and `--min-seconds` seconds; a
ratio is the median of per-round ratios with a bootstrap 95% interval.

Accuracy (`runtime/against_f32.py`, what `netc verify --against-f32` prints), on inputs
drawn apart from the calibration data: the largest absolute error, the largest error
relative to the f32 output's largest magnitude, and top-1 agreement (argmax over the class
axis; target >= 0.99) with its Wilson 95% interval (PASS when the whole interval is
>= 0.99). The check data:

- MLP: `gaussian`, standard normal rows, 8 x 250 (the figure reported before); `pixels`,
  random 8-bit images scaled to [0, 1], what the MNIST MLP reads, 40 x 250; `trained`,
  weights trained on MNIST-like synthetic figures (`benchmarks/trained_models.py`,
  PyTorch, imported by `netc weights import`) on 40 x 250 held-out figures.
- Tagger: `random weights`, the seeded random weights on random words, 4 x 50 x 32 (as
  before); `trained`, weights trained on a synthetic tagging task (`trained_models.py`)
  on random words, 4 x 50 x 32.
- ResNet-50: 48 x 8 random images (384: the fewest whose Wilson interval can clear 0.99
  with no disagreement).

Next to each agreement, the margins that explain it: the median over all rows of the f32
top-1 minus top-2 score (in logits: for a softmax output, of its logarithm), and the
largest such margin among the rows whose top-1 changed. Flips happen only where the
margin is of the order of the int8 error. And how varied the f32 model's answers are: the
share of the rows whose top-1 is the commonest class.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from harness import ROOT, Bench, Estimate, interleave, ort_session, setup_threads, verdict
from trained_models import Digits

from netc.runtime.against_f32 import compare_sessions, wilson_interval

EXAMPLES = ROOT / "examples"
HERE = Path(__file__).resolve().parent
GOAL = 0.99  # top-1 agreement


def _mlp(seed: int, n: int = 32) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((n, 784)).astype(np.float32)}


def _pixels(seed: int, n: int = 250) -> dict[str, np.ndarray]:
    return {"image": (np.random.default_rng(seed).integers(0, 256, (n, 784)) / 255).astype(np.float32)}


def _digits(seed: int, n: int = 250) -> dict[str, np.ndarray]:
    return {"image": Digits(0).sample(np.random.default_rng(seed), n)[0]}


def _tagger(seed: int) -> dict[str, np.ndarray]:
    return {"words": np.random.default_rng(seed).integers(0, 5000, (50, 32)).astype(np.int64)}


def _images(seed: int, n: int = 1) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((n, 3, 224, 224)).astype(np.float32)}


# name: (example, mode, timed input, {check set: (weights, feeds)}, latency target); weights
# None are the compiler's seeded random weights, "trained" those of trained_models.py.
MODELS = {
    "mnist_mlp": ("mnist_mlp.net", "dynamic", lambda: _mlp(0),
                  {"gaussian": (None, lambda: [_mlp(100 + s, 250) for s in range(8)]),
                   "pixels": (None, lambda: [_pixels(200 + s) for s in range(40)]),
                   "trained": ("trained", lambda: [_digits(300 + s) for s in range(40)])}, 0.5),
    "bilstm_tagger": ("bilstm_tagger.net", "dynamic", lambda: _tagger(0),
                      {"random weights": (None, lambda: [_tagger(100 + s) for s in range(4)]),
                       "trained": ("trained", lambda: [_tagger(100 + s) for s in range(4)])}, 0.5),
    "resnet50": ("resnet50.net", "static", lambda: _images(0),
                 {"random": (None, lambda: [_images(100 + s, 8) for s in range(48)])}, 0.6),
}
VARIANTS = {"int8": [], "int8 all": ["--quantize-all"]}


def wilson(agree: float, n: int) -> Estimate:
    """Top-1 agreement with its Wilson 95% interval (the one `netc verify --against-f32` prints)."""
    return Estimate(agree, *wilson_interval(agree, n), n)


class _Memo:
    """An onnxruntime session whose outputs are kept per feed (the f32 model is compared
    with two int8 variants on the same feeds, and a ResNet-50 pass is not free)."""

    def __init__(self, session):
        self.session, self.cache = session, {}

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, names, feed):
        key = (tuple(names), tuple(id(v) for v in feed.values()))
        if key not in self.cache:
            self.cache[key] = self.session.run(names, feed)
        return self.cache[key]


def margins(f32, quant, feeds: list[dict[str, np.ndarray]]) -> tuple[float, float]:
    """Median top-1 minus top-2 margin of the f32 model's first output over all rows, and
    the largest among rows whose top-1 the int8 model changed (0 when none did). A
    softmax output (rows of non-negative values summing to 1) is compared in logarithms,
    which are its logits up to a constant per row."""
    name = f32.get_outputs()[0].name
    fs, qs = [], []
    for feed in feeds:
        f, q = f32.run([name], feed)[0], quant.run([name], feed)[0]
        fs.append(f.reshape(-1, f.shape[-1]).astype(np.float64))
        qs.append(q.reshape(-1, q.shape[-1]))
    f, q = np.concatenate(fs), np.concatenate(qs)
    if f.min() >= 0 and np.allclose(f.sum(-1), 1, atol=1e-3):
        f = np.log(np.maximum(f, 1e-30))
    top = np.sort(f, axis=-1)
    margin = top[:, -1] - top[:, -2]
    flipped = f.argmax(-1) != q.argmax(-1)
    return float(np.median(margin)), float(margin[flipped].max(initial=0.0))


def _compile(example: str, out: Path, extra: list[str]) -> None:
    # In processes of their own: onnxruntime's calibration makes sessions with a pool of
    # their own, which this process's shared pool forbids.
    subprocess.run([sys.executable, "-m", "netc", "compile", str(EXAMPLES / example), "-o", str(out), *extra],
                   check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="keep taking rounds until this long has passed (the MLP's 60 rounds take 20 ms: "
                             "one burst of other load would skew them all)")
    parser.add_argument("--train-steps", type=int, default=300, help="trained_models.py's training steps")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("quantize")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            example, mode, timed, checks, target = MODELS[name]
            quantize = ["--quantize", mode]
            if mode == "static":
                images = np.random.default_rng(1).standard_normal((32, 3, 224, 224)).astype(np.float32)
                np.savez(Path(tmp, "calibration.npz"), image=images)
                quantize += ["--calibrate", str(Path(tmp, "calibration.npz"))]
            paths: dict[tuple[str | None, str], Path] = {}
            for weights in sorted({w for w, _ in checks.values()}, key=str):
                extra = []
                if weights == "trained":
                    npz = Path(tmp, f"{name}.trained.npz")
                    done = subprocess.run([sys.executable, str(HERE / "trained_models.py"), "--model", name,
                                           "-o", str(npz), "--steps", str(args.train_steps),
                                           "--threads", str(args.threads)],
                                          check=True, capture_output=True, text=True)
                    bench.note(f"{name}: trained_models.py --model {name} --steps {args.train_steps}: task "
                               f"{done.stdout.strip().splitlines()[-1]} (f32, on held-out samples)")
                    extra = ["--weights", str(npz)]
                tag = weights or "seeded"
                paths[weights, "f32"] = Path(tmp, f"{name}.{tag}.onnx")
                _compile(example, paths[weights, "f32"], extra)
                for variant, flags in VARIANTS.items():
                    paths[weights, variant] = Path(tmp, f"{name}.{tag}.{variant.replace(' ', '_')}.onnx")
                    _compile(example, paths[weights, variant], [*extra, *quantize, *flags])
            case = f"{name} ({mode})"
            sessions = {v: ort_session(paths[None, v]) for v in ["f32", *VARIANTS]}
            feed = timed()
            times = interleave({v: (lambda s=s, f=feed: s.run(None, f)) for v, s in sessions.items()}, args.rounds,
                               args.warmup, min_seconds=args.min_seconds)
            for v in sessions:
                bench.time_row(case, f"{v} ms", times[v])
            for v in VARIANTS:
                bench.ratio_row(case, f"{v} / f32 latency", times[v], times["f32"], target=target)
            for check, (weights, feeds) in checks.items():
                data = feeds()
                f32 = _Memo(sessions["f32"] if weights is None else ort_session(paths[weights, "f32"]))
                name0 = f32.get_outputs()[0].name
                top1 = np.concatenate([f32.run([name0], feed)[0].argmax(-1).ravel() for feed in data])
                bench.row(case, f"f32, {check}: share of the commonest top-1 class", np.bincount(top1).max() / len(top1))
                for v in VARIANTS:
                    q = sessions[v] if weights is None else ort_session(paths[weights, v])
                    report = compare_sessions(f32, q, data, name)
                    for out in report.outputs:
                        label = f"{v}, {check}: {out.name}"
                        bench.row(case, f"{label}: max abs err", out.max_abs)
                        bench.row(case, f"{label}: max rel err (of max |f32|)", out.max_rel)
                        if out.agreement is not None:
                            e = wilson(out.agreement, out.rows)
                            bench.row(case, f"{label}: top-1 agreement ({out.rows} rows)", e.value, e.low, e.high,
                                      target=f">= {GOAL:g}", verdict=verdict(e, GOAL, higher_is_better=True))
                            if out is report.outputs[0]:
                                median, flipped = margins(f32, q, data)
                                bench.row(case, f"{label}: top-2 margin, median of all rows", median)
                                bench.row(case, f"{label}: top-2 margin, largest of changed rows", flipped)
    bench.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
