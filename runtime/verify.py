"""onnxruntime against the NumPy reference interpreter, on random inputs.

Each seed draws new inputs (symbolic dims alternate between small sizes, 2 and 3) and
compares every network output within a tolerance per dtype. When an output disagrees,
the network is lowered again with every intermediate value exposed and compared op by
op: the first op whose result diverges (its inputs still agree) is reported at its
source line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from netc import progress
from netc.compiler.ir import DType, Graph, Op
from netc.compiler.lowering import DEFAULT_OPSET, lower_graph
from netc.compiler.ops import REGISTRY
from netc.dsl.errors import NetcVerifyError, first_line
from netc.runtime.input_values import value_rules
from netc.runtime.inputs import check_inputs, graph_specs, random_inputs
from netc.runtime.lean_session import make_lean_session
from netc.runtime.reference import run_graph
from netc.runtime.run import run_session, short_dtype
from netc.runtime.session import make_session
from netc.runtime.stochastic import (
    draw_problems,
    draws,
    free_axes,
    random_values,
    structure_problem,
)

TOLERANCES: dict[DType, tuple[float, float]] = {  # (rtol, atol)
    DType.f16: (1e-2, 1e-2),
    DType.bf16: (2e-2, 2e-2),
    DType.f32: (1e-4, 1e-5),
    DType.f64: (1e-9, 1e-11),
}
EXACT = (0.0, 0.0)  # integers and booleans must match exactly
SIZES = (2, 3)  # symbolic dims take these sizes in turn; odd seeds start from the other end


def tolerance(dtype: np.dtype, rtol: float | None = None, atol: float | None = None) -> tuple[float, float]:
    """(rtol, atol) for a dtype; `rtol`/`atol` override the floats' defaults, while
    integers and booleans always compare exactly."""
    try:
        default = TOLERANCES.get(DType.from_numpy(np.dtype(dtype)), EXACT)
    except KeyError:
        default = EXACT
    if default is EXACT:
        return EXACT
    return (default[0] if rtol is None else rtol, default[1] if atol is None else atol)


@dataclass
class Comparison:
    """One tensor compared: the largest absolute and relative errors and the verdict."""

    name: str
    type: str
    max_abs: float
    max_rel: float
    rtol: float
    atol: float
    ok: bool
    note: str = ""


def compare(name: str, got: np.ndarray, want: np.ndarray, rtol: float | None = None,
            atol: float | None = None) -> Comparison:
    """`got` (onnxruntime) against `want` (reference): |got - want| <= atol + rtol * |want|
    everywhere; NaNs must sit in the same places."""
    rt, at = tolerance(want.dtype, rtol, atol)
    kind = f"{short_dtype(want.dtype)}{list(want.shape)}"
    if got.shape != want.shape:
        return Comparison(name, kind, np.inf, np.inf, rt, at, False,
                          f"onnxruntime gives shape {list(got.shape)}")
    if got.dtype != want.dtype:
        return Comparison(name, kind, np.inf, np.inf, rt, at, False, f"onnxruntime gives dtype {got.dtype}")
    a = got.astype(np.float64)
    b = want.astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    same_inf = np.isinf(a) & (a == b)
    usable = ~(nan_a | nan_b | same_inf)
    diff = np.where(usable, np.abs(a - b), 0.0)
    scale = np.abs(b)
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=usable & (scale > 0))
    ok_values = diff <= at + rt * scale
    note = ""
    bad_nan = nan_a != nan_b
    if bad_nan.any():
        note = f"NaN in {int(bad_nan.sum())} place(s) on one side only"
    bad_inf = (np.isinf(a) | np.isinf(b)) & ~same_inf & ~(nan_a | nan_b)
    if bad_inf.any():
        note = note or f"infinities differ in {int(bad_inf.sum())} place(s)"
        diff = np.where(bad_inf, np.inf, diff)
    ok = bool(np.all(ok_values | ~usable) and not bad_nan.any() and not bad_inf.any())
    return Comparison(name, kind, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), rt, at, ok, note)


def compare_random(name: str, got: np.ndarray, want: np.ndarray, free: set[int] = frozenset()) -> Comparison:
    """A result computed from random draws: the two sides may differ in value (and in size
    along the `free` axes); shape, dtype and NaNs must agree."""
    problem = structure_problem(got, want, free)
    kind = f"{short_dtype(want.dtype)}{list(want.shape)}"
    return Comparison(name, kind, 0.0, 0.0, 0.0, 0.0, not problem, problem or "random: compared by structure")


@dataclass
class Divergence:
    """The first op whose onnxruntime result differs from the reference's."""

    op: Op
    seed: int
    comparisons: list[Comparison]

    def error(self) -> NetcVerifyError:
        bad = next(c for c in self.comparisons if not c.ok)
        label = self.op.label or self.op.kind
        detail = bad.note or f"max abs err {bad.max_abs:.3g}, max rel err {bad.max_rel:.3g}"
        return NetcVerifyError(
            f"onnxruntime and the reference first disagree at {label} ({self.op.kind}), "
            f"result {bad.name} {bad.type}: {detail} (rtol {_tol(bad.rtol)}, atol {_tol(bad.atol)}; seed {self.seed})",
            self.op.span,
            [f"its inputs agree, so the ONNX lowering or the NumPy reference of `{self.op.kind}` is wrong"])


@dataclass
class VerifyReport:
    network: str
    provider: str
    seeds: list[int]
    sizes: list[dict[str, int]]  # the symbolic-dim sizes used with each seed
    outputs: list[Comparison]  # per output, the worst over the seeds
    per_op: list[tuple[Op, Comparison]] = field(default_factory=list)
    divergence: Divergence | None = None
    failing_seed: int | None = None
    draws: list[tuple[Op, Comparison]] = field(default_factory=list)  # each random op's draws, checked

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.outputs) and all(c.ok for _, c in self.draws)


def verify(graph: Graph, params: Mapping[str, np.ndarray] | Callable[[], Mapping[str, np.ndarray]],
           model: onnx.ModelProto, seeds: Sequence[int] = (0, 1, 2),
           rtol: float | None = None, atol: float | None = None, per_op: bool = False,
           opset: int = DEFAULT_OPSET, provider: str = "cpu", sizes: Mapping[str, int] | None = None,
           check_model: bool = True, params_in_model: bool = True,
           model_file: str | Path | None = None) -> VerifyReport:
    """Compare `model` (the lowering of `graph` with `params`) on onnxruntime with the
    reference interpreter; with `per_op`, also compare every intermediate for the first seed.

    Without `params_in_model`, `model` was lowered without its parameters: onnxruntime reads
    them from `params` in place (no second copy of the weights), and the checker sees them
    as graph inputs. With `model_file` (the complete model, saved), onnxruntime loads that
    instead (in two steps when it is large: `lean_session`), and `params` may be a function
    that makes them, called after the session is gone, or a mapping that reads each weight
    when asked (`SavedWeights`): the reference looks each up just before its first reader
    and drops it after its last, so the weights are never in memory twice."""
    if check_model and model.ByteSize() < 2**31 - 2**24:
        try:
            onnx.checker.check_model(model if params_in_model else _params_as_inputs(model, graph),
                                     full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
            raise NetcVerifyError(f"the ONNX checker rejects the model of '{graph.name}': "
                                  f"{first_line(err)}", graph.span) from None
    specs = graph_specs(graph)
    random = random_values(graph)
    if model_file is not None:  # a large model's session is built in two steps (lean_session)
        session = make_lean_session(model_file, provider, sum(p.size * p.dtype.numpy.itemsize for p in graph.params))
    else:
        params = params() if callable(params) else params
        session = make_session(model, provider, initializers=None if params_in_model else params)
    session.value_rules = value_rules(graph)  # values onnxruntime and the reference would wrap: refused
    session.spans = {op.label: op.span for op in graph.walk() if op.label and op.span}
    worst: dict[str, Comparison] = {}
    used_sizes: list[dict[str, int]] = []
    failing: tuple[int, dict[str, np.ndarray]] | None = None
    first: tuple[int, dict[str, np.ndarray]] | None = None
    seed_count = progress.counter("verify seeds", len(seeds), "seeds")
    # Every seed on onnxruntime first, then the session is dropped before the reference runs:
    # the peak memory is the larger of the two, not their sum.
    runs, results = [], []
    for seed in seeds:
        cycle = SIZES if seed % 2 == 0 else SIZES[::-1]
        inputs = random_inputs(specs, seed, sizes, default=cycle, minima=graph.min_sizes.minima)
        used_sizes.append(check_inputs(specs, inputs))
        runs.append((seed, inputs))
        results.append(run_session(session, inputs, specs))
    provider_used = session.provider
    del session
    params = params() if callable(params) else params
    for (seed, inputs), got in zip(runs, results):
        first = first or (seed, inputs)
        with progress.counter(f"seed {seed}: reference", len(graph.ops), "ops") as ops:
            want = run_graph(graph, params, inputs, on_op=lambda _op, ops=ops: ops.update())
        seed_count.update()
        for name, expected in want.items():
            if id(graph.outputs[name]) in random:
                c = compare_random(name, got[name], expected, free_axes(graph, graph.outputs[name].type))
            else:
                c = compare(name, got[name], expected, rtol, atol)
            prev = worst.get(name)
            if prev is None or (prev.ok and not c.ok) or (prev.ok == c.ok and c.max_abs > prev.max_abs):
                worst[name] = c
            if not c.ok and failing is None:
                failing = (seed, inputs)
    seed_count.close()
    for name, c in worst.items():  # report the declared type; the errors are the worst over the seeds
        c.type = str(graph.outputs[name].type)
    report = VerifyReport(graph.name, provider_used, list(seeds), used_sizes,
                          [worst[n] for n in graph.outputs if n in worst],
                          failing_seed=failing[0] if failing else None)
    probe = failing or (first if per_op or random else None)  # random ops' draws are always checked
    if probe is not None:
        seed, inputs = probe
        rows, divergence = compare_ops(graph, params, inputs, seed, rtol, atol, opset, provider,
                                       _compile_seed(model))
        report.draws = [(op, c) for op, c in rows if draws(op)]
        if per_op or failing:
            report.per_op, report.divergence = rows, divergence
    return report


def _compile_seed(model: onnx.ModelProto) -> int:
    """The seed the model was compiled with (its metadata), so that the exposed model draws
    as it does; 0 when not recorded."""
    text = next((p.value for p in model.metadata_props if p.key == "netc.seed"), "0")
    return int(text) if text.lstrip("-").isdigit() else 0


def _params_as_inputs(model: onnx.ModelProto, graph: Graph) -> onnx.ModelProto:
    """A copy of a model lowered without its parameters, with them declared as inputs."""
    checked = onnx.ModelProto()
    checked.CopyFrom(model)
    checked.graph.input.extend(onnx.helper.make_tensor_value_info(p.name, p.dtype.onnx, list(p.shape))
                               for p in graph.params)
    return checked


def compare_ops(graph: Graph, params: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray], seed: int,
                rtol: float | None = None, atol: float | None = None, opset: int = DEFAULT_OPSET,
                provider: str = "cpu", compile_seed: int = 0) -> tuple[list[tuple[Op, Comparison]], Divergence | None]:
    """Every top-level op's results on onnxruntime and in the reference; and the first op
    that diverges. Ops without a tensor of their own in the ONNX graph (constants folded
    into initializers, identities) are skipped."""
    model, names = exposed_model(graph, params, opset, compile_seed)
    session = make_session(model, provider)
    session.value_rules = value_rules(graph)  # values onnxruntime and the reference would wrap: refused
    session.spans = {op.label: op.span for op in graph.walk() if op.label and op.span}
    out_names = [o.name for o in session.session.get_outputs()]
    got = dict(zip(out_names, session.session.run(out_names, dict(inputs))))
    record: dict[int, np.ndarray] = {}
    run_graph(graph, params, inputs, record=record)
    random = random_values(graph)
    rows: list[tuple[Op, Comparison]] = []
    divergence = None

    def ort(v):  # onnxruntime's value of an IR value, where the exposed model has it
        return got[names[id(v)]] if id(v) in names and names[id(v)] in got else record.get(id(v))

    for op in graph.ops:
        shown = [v for v in op.outputs if id(v) in names and names[id(v)] in got and id(v) in record]
        if draws(op):
            outs = [ort(v) for v in op.outputs]
            problems = draw_problems(op, [("onnxruntime", [ort(v) for v in op.inputs if v is not None], outs),
                                          ("reference", [record.get(id(v)) for v in op.inputs if v is not None],
                                           [record[id(v)] for v in op.outputs])])
            first = op.outputs[0]
            kind = f"{first.type}"
            own = REGISTRY[op.kind].stochastic(op)  # else the draws are inside its body
            note = "random: draws checked on both sides" if own else "random inside its body: compared by structure"
            comparisons = [Comparison(first.name, kind, 0.0, 0.0, 0.0, 0.0, not problems, problems[0] if problems else note)]
        elif any(id(v) in random for v in op.outputs):
            comparisons = [compare_random(v.name, got[names[id(v)]], record[id(v)], free_axes(graph, v.type))
                           for v in shown]
        else:
            comparisons = [compare(v.name, got[names[id(v)]], record[id(v)], rtol, atol) for v in shown]
        rows += [(op, c) for c in comparisons]
        if divergence is None and any(not c.ok for c in comparisons):
            divergence = Divergence(op, seed, comparisons)
    return rows, divergence


def exposed_model(graph: Graph, params: Mapping[str, np.ndarray], opset: int = DEFAULT_OPSET,
                  compile_seed: int = 0) -> tuple[onnx.ModelProto, dict[int, str]]:
    """The model with every intermediate as an output, and the ONNX output name of each IR
    value that has one (by `id(value)`); random ops seeded as in a compile with `compile_seed`."""
    value_names: dict[int, str] = {}
    model = lower_graph(graph, params, opset, expose_all=True, value_names=value_names, seed=compile_seed)
    exposed = {info.name for info in model.graph.output}
    names: dict[int, str] = {}
    for name, value in graph.outputs.items():  # an output reads under the name the user gave it
        names.setdefault(id(value), name)
    for key, name in value_names.items():
        if name in exposed:
            names.setdefault(key, name)
    return model, names


# --------------------------------------------------------------------------- reporting
def format_report(report: VerifyReport) -> str:
    sizes = " | ".join(", ".join(f"{k}={v}" for k, v in s.items()) or "static" for s in report.sizes)
    lines = [f"verify {report.network}: onnxruntime ({report.provider}) vs the NumPy reference, "
             f"seeds {', '.join(map(str, report.seeds))} (sizes {sizes})"]
    lines += _table("output", [(c.name, c) for c in report.outputs])
    if report.per_op:
        seed = report.failing_seed if report.failing_seed is not None else report.seeds[0]
        lines += ["", f"op by op (seed {seed}):"]
        lines += _table("op", [(f"{op.label or op.kind} ({op.kind})", c) for op, c in report.per_op])
    if report.draws:
        lines += ["", "random ops (each draw checked against its distribution: support and moments):"]
        lines += [f"  {op.label or op.kind} ({op.kind}): " + ("ok" if c.ok else "IMPLAUSIBLE")
                  + (f" ({c.note})" if c.note else "") for op, c in report.draws]
    verdict = "ok" if report.ok else "MISMATCH"
    lines += ["", f"{verdict}: {sum(c.ok for c in report.outputs)}/{len(report.outputs)} outputs within tolerance"]
    return "\n".join(lines)


def _table(first: str, rows: list[tuple[str, Comparison]]) -> list[str]:
    header = [first, "type", "max abs err", "max rel err", "rtol/atol", "ok"]
    body = [[name, c.type, f"{c.max_abs:.3g}", f"{c.max_rel:.3g}", f"{_tol(c.rtol)}/{_tol(c.atol)}",
             ("ok" if c.ok else "MISMATCH") + (f" ({c.note})" if c.note else "")] for name, c in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(r[:-1], widths)), r[-1]]).rstrip() for r in [header, *body]]


def _tol(x: float) -> str:
    return f"{x:.0e}" if x else "0"
