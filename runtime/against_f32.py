"""A quantized model against the f32 model it was made from, on the same inputs.

Per output: the largest absolute error, the largest error relative to the f32 output's
largest magnitude (`max |q - f| / max |f|`, so near-zero values do not blow it up), and,
for float outputs of rank >= 2 whose last axis has at least 2 entries (a classifier's
[N, C] scores, a tagger's [T, N, C]), top-1 agreement: the fraction of rows whose argmax
over the last axis is the same.

Documented tolerance (`docs/quantization.md`): an output passes when its top-1 agreement
is at least `min_agreement` (default 0.97) where it has one, and otherwise when its
relative error is at most `max_rel` (default 0.1). The report shows the agreement's
Wilson 95% interval too: on a few hundred rows one changed row moves it by a fraction
of a percent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

MIN_AGREEMENT = 0.97
MAX_REL = 0.1


def wilson_interval(fraction: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% by default) of a proportion measured on `n` trials."""
    if n <= 0:
        return 0.0, 1.0
    centre = (fraction + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(fraction * (1 - fraction) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class OutputError:
    name: str
    max_abs: float
    max_rel: float
    agreement: float | None  # top-1 agreement, for outputs with a class axis
    rows: int  # rows compared for the agreement (or values, for the others)
    ok: bool


@dataclass
class QuantReport:
    network: str
    batches: int
    outputs: list[OutputError]
    min_agreement: float
    max_rel: float

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)


def compare_sessions(f32, quant, feeds: Iterable[Mapping[str, np.ndarray]], network: str = "",
                     min_agreement: float = MIN_AGREEMENT, max_rel: float = MAX_REL) -> QuantReport:
    """Run both onnxruntime sessions on every feed and compare their outputs."""
    names = [o.name for o in f32.get_outputs()]
    q_names = {o.name for o in quant.get_outputs()}
    missing = [n for n in names if n not in q_names]
    if missing:
        from netc.dsl.errors import NetcInputError

        raise NetcInputError(f"the quantized model lacks output(s) {', '.join(missing)} of the f32 model")
    abs_err = dict.fromkeys(names, 0.0)
    scale = dict.fromkeys(names, 0.0)
    agree = dict.fromkeys(names, 0)
    rows = dict.fromkeys(names, 0)
    classes: dict[str, bool] = {}
    batches = 0
    for feed in feeds:
        batches += 1
        want = dict(zip(names, f32.run(names, dict(feed))))
        got = dict(zip(names, quant.run(names, dict(feed))))
        for n in names:
            f, q = np.asarray(want[n]), np.asarray(got[n])
            if not np.issubdtype(f.dtype, np.floating):
                abs_err[n] = max(abs_err[n], float(np.max(f != q, initial=0)))
                rows[n] += f.size
                continue
            f64, q64 = f.astype(np.float64), q.astype(np.float64)
            abs_err[n] = max(abs_err[n], float(np.max(np.abs(q64 - f64), initial=0.0)))
            scale[n] = max(scale[n], float(np.max(np.abs(f64), initial=0.0)))
            classes[n] = f.ndim >= 2 and f.shape[-1] >= 2
            if classes[n]:
                agree[n] += int(np.sum(np.argmax(f, axis=-1) == np.argmax(q, axis=-1)))
                rows[n] += f.size // f.shape[-1]
            else:
                rows[n] += f.size
    outputs = []
    for n in names:
        rel = abs_err[n] / scale[n] if scale[n] > 0 else (0.0 if abs_err[n] == 0 else float("inf"))
        agreement = agree[n] / rows[n] if classes.get(n) and rows[n] else None
        ok = agreement >= min_agreement if agreement is not None else rel <= max_rel
        outputs.append(OutputError(n, abs_err[n], rel, agreement, rows[n], ok))
    return QuantReport(network, batches, outputs, min_agreement, max_rel)


def format_report(report: QuantReport, model: str) -> str:
    lines = [f"verify {model} against the f32 model of {report.network} ({report.batches} batch(es)); "
             f"passes with top-1 agreement >= {report.min_agreement:g}, else max rel err <= {report.max_rel:g}"]
    header = ["output", "max abs err", "max rel err", "top-1 agreement", "ok"]
    body = [[o.name, f"{o.max_abs:.3g}", f"{o.max_rel:.3g}", _agreement(o), "ok" if o.ok else "MISMATCH"]
            for o in report.outputs]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
    lines += ["  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths)), r[-1]]).rstrip() for r in [header, *body]]
    lines.append(f"{'ok' if report.ok else 'MISMATCH'}: {sum(o.ok for o in report.outputs)}/{len(report.outputs)} "
                 "outputs within tolerance")
    return "\n".join(lines)


def _agreement(o: OutputError) -> str:
    if o.agreement is None:
        return "-"
    low, high = wilson_interval(o.agreement, o.rows)
    return f"{o.agreement:.2%} of {o.rows} (95% interval {low:.1%}-{high:.1%})"
