"""Random ops: onnxruntime's draws and the reference's, each tested against the definition
by statistics with fixed seeds (moments, chi-square goodness of fit at significance 1e-4,
with the power against a stated wrong distribution computed and required above 0.999), and
by structure (support, shapes, determinism for a fixed seed, fresh draws per step)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import netc
from netc.compiler.lowering import lower_graph
from netc.compiler.ops import REGISTRY
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session
from netc.runtime.verify import verify
from tests.conftest import EXAMPLES, check_onnx

ALPHA_Z = 3.719  # one-sided standard normal quantile for significance 1e-4


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def chi2_critical(k: int, z: float = ALPHA_Z) -> float:
    """Upper quantile of chi-square(k) (Wilson-Hilferty; within 1% for k >= 3)."""
    c = 2 / (9 * k)
    return k * (1 - c + z * math.sqrt(c)) ** 3


def chi2_power(k: int, noncentrality: float) -> float:
    """P(noncentral chi-square(k, lambda) > critical value), by Patnaik's scaled chi-square
    and Wilson-Hilferty: the power of the test against an alternative of that lambda."""
    scale = (k + 2 * noncentrality) / (k + noncentrality)
    dof = (k + noncentrality) ** 2 / (k + 2 * noncentrality)
    x = chi2_critical(k) / scale
    c = 2 / (9 * dof)
    return 1 - _phi(((x / dof) ** (1 / 3) - (1 - c)) / math.sqrt(c))


def chi2(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def both(text: str, inputs: dict, seed: int = 0) -> tuple[dict, dict, netc.Compiled]:
    compiled = netc.compile_source(text, seed=seed)
    check_onnx(compiled.model)
    session = make_session(compiled.model).session
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, inputs)))
    return got, run_graph(compiled.graph, compiled.params, inputs), compiled


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


# ----------------------------------------------------------------------------- sample


LOGITS = np.array([2.0, 1.0, 0.0, -1.0, -3.0], np.float32)


def test_sample_frequencies_fit_softmax_over_temperature():
    n, temperature = 20_000, 0.7
    text = "network S {\n  input x: f32[N, 5]\n  output ids = sample(x, temperature=0.7)\n}\n"
    got, want, _ = both(text, {"x": np.tile(LOGITS, (n, 1))})
    p = softmax(LOGITS / temperature)
    wrong = softmax(LOGITS)  # the alternative: the temperature ignored
    k = len(p) - 1
    power = chi2_power(k, n * float(((wrong - p) ** 2 / p).sum()))
    assert power > 0.999, power  # the test can tell a sampler that ignores the temperature
    for side, ids in (("onnxruntime", got["ids"]), ("reference", want["ids"])):
        counts = np.bincount(ids.astype(np.int64), minlength=5)
        assert chi2(counts, p) < chi2_critical(k), (side, counts)
        assert chi2(counts, wrong) > chi2_critical(k), (side, counts)


def test_sample_never_draws_an_impossible_class_and_keeps_leading_axes():
    x = np.tile(np.array([0.0, -np.inf, 1.0, -np.inf], np.float32), (3, 4, 1))
    text = "network S {\n  input x: f32[T, N, 4]\n  output ids = sample(x)\n}\n"
    got, want, _ = both(text, {"x": x})
    for ids in (got["ids"], want["ids"]):
        assert ids.shape == (3, 4) and ids.dtype == np.int64
        assert set(np.unique(ids)) <= {0, 2}


# ----------------------------------------------------------------------------- bernoulli


def test_bernoulli_frequencies():
    n = 20_000
    p = np.repeat(np.array([0.1, 0.5, 0.9], np.float32)[:, None], n, axis=1)
    text = "network B {\n  input p: f32[3, N]\n  output y = bernoulli(p)\n}\n"
    got, want, _ = both(text, {"p": p})
    for side, y in (("onnxruntime", got["y"]), ("reference", want["y"])):
        assert set(np.unique(y)) <= {0.0, 1.0}
        for row, prob in enumerate((0.1, 0.5, 0.9)):
            z = (y[row].sum() - n * prob) / math.sqrt(n * prob * (1 - prob))
            assert abs(z) < ALPHA_Z, (side, prob, y[row].mean())


def test_onnxruntime_bernoulli_kernel_is_inverted_and_the_draw_check_sees_it():
    """Why `bernoulli` does not lower to ONNX Bernoulli: onnxruntime's CPU kernel gives 1 with
    probability 1 - p. The op's own draw check flags such draws."""
    node = helper.make_node("Bernoulli", ["p"], ["y"], seed=1.0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("p", TensorProto.FLOAT, [5000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5000])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    p = np.full(5000, 0.1, np.float32)
    y = make_session(model).session.run(None, {"p": p})[0]
    op = netc.compile_source("network B {\n  input p: f32[N]\n  output y = bernoulli(p)\n}\n").graph.ops[-1]
    problems = REGISTRY["bernoulli"].check_draw(op, [p], [y])
    if y.mean() > 0.5:  # the kernel as measured with onnxruntime 1.32
        assert problems and "standard errors" in problems[0]
    else:  # a fixed kernel: then it agrees with the definition
        assert not problems


# ----------------------------------------------------------------------------- normal, uniform


def test_normal_moments_and_decile_fit():
    n, mean, scale = 100_000, 2.0, 0.5
    text = "network R {\n  input x: f32[N]\n  output y = random_normal(like=x, mean=2, scale=0.5)\n}\n"
    got, want, compiled = both(text, {"x": np.zeros(n, np.float32)})
    op = next(op for op in compiled.graph.ops if op.kind == "random_normal")
    edges = [-math.inf, *(q for q in np.linspace(-3, 3, 13)[1:-1]), math.inf]
    probs = np.diff([_phi(e) if math.isfinite(e) else (0.0 if e < 0 else 1.0) for e in edges])
    for side, y in (("onnxruntime", got["y"]), ("reference", want["y"])):
        assert not REGISTRY["random_normal"].check_draw(op, [], [y]), side
        z = (y.astype(np.float64) - mean) / scale
        counts = np.histogram(z, bins=edges)[0]
        assert chi2(counts, probs) < chi2_critical(len(probs) - 1), (side, counts)
    # the draw check notices a mean off by 2% of the scale, and a spread 5% too wide, at this n
    shifted = np.random.default_rng(0).standard_normal(n) * scale + mean + 0.02 * scale
    assert REGISTRY["random_normal"].check_draw(op, [], [shifted]), "a shifted mean goes unnoticed"
    wide = np.random.default_rng(1).standard_normal(n) * scale * 1.05 + mean
    assert REGISTRY["random_normal"].check_draw(op, [], [wide]), "a 5% wider spread goes unnoticed"


def test_uniform_support_and_fit():
    n = 100_000
    text = ("network R {\n  input x: f32[N, 4]\n"
            "  output y = random_uniform(N, 4, 1000, low=-2, high=3)\n}\n")
    got, want, _ = both(text, {"x": np.zeros((25, 4), np.float32)})
    for side, y in (("onnxruntime", got["y"]), ("reference", want["y"])):
        assert y.shape == (25, 4, 1000) and y.dtype == np.float32
        assert y.min() >= -2 and y.max() <= 3, side
        counts = np.histogram(y, bins=10, range=(-2, 3))[0]
        assert chi2(counts, np.full(10, 0.1)) < chi2_critical(9), (side, counts)
    assert y.size == n


# ----------------------------------------------------------------------------- dropout


def test_dropout_at_inference_drops_the_stated_share():
    n, p = 50_000, 0.3
    text = "network D {\n  input x: f32[N]\n  output y = dropout(x, 0.3, training=true)\n}\n"
    x = np.ones(n, np.float32)
    got, want, _ = both(text, {"x": x})
    for side, y in (("onnxruntime", got["y"]), ("reference", want["y"])):
        assert {round(float(v), 5) for v in np.unique(y)} <= {0.0, round(1 / (1 - p), 5)}, side
        z = ((y == 0).sum() - n * p) / math.sqrt(n * p * (1 - p))
        assert abs(z) < ALPHA_Z, (side, (y == 0).mean())


# ----------------------------------------------------------------------------- determinism


NOISY = """
network Noisy {
  input x: f32[N, 8]
  a = random_normal(like=x)
  b = random_normal(like=x)
  output y = x + a
  output z = b
}
"""


def test_compiled_files_are_byte_identical_and_seeds_follow_the_compile_seed():
    first = netc.compile_source(NOISY, seed=5).model
    assert first.SerializeToString() == netc.compile_source(NOISY, seed=5).model.SerializeToString()
    other = netc.compile_source(NOISY, seed=6).model

    def seeds(model: onnx.ModelProto) -> list[float]:
        return [a.f for node in model.graph.node for a in node.attribute if a.name == "seed"]

    assert len(set(seeds(first))) == 2  # two layers, two streams
    assert all(s == int(s) and 0 <= s < 2**24 for s in seeds(first))
    assert seeds(first) != seeds(other)


def test_fresh_sessions_and_reference_runs_reproduce():
    compiled = netc.compile_source(NOISY, seed=5)
    x = np.zeros((1000, 8), np.float32)
    runs = [make_session(compiled.model).session.run(None, {"x": x}) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    refs = [run_graph(compiled.graph, compiled.params, {"x": x}) for _ in range(2)]
    np.testing.assert_array_equal(refs[0]["y"], refs[1]["y"])
    # two layers draw independently
    for y, z in ((runs[0][0], runs[0][1]), (refs[0]["y"], refs[0]["z"])):
        r = np.corrcoef(y.ravel(), z.ravel())[0, 1]
        assert abs(r) < ALPHA_Z / math.sqrt(y.size)


def test_a_step_draws_anew_at_every_step():
    text = """
block noisy(h, x) {
  return h + x + random_normal(dim(h, 0), 4)
}
network R {
  input xs: f32[T, N, 4]
  output hs = recur(noisy, xs, init=zeros(N, 4))
}
"""
    xs = np.zeros((3, 500, 4), np.float32)
    got, want, compiled = both(text, {"xs": xs})
    recur = next(op for op in compiled.graph.ops if op.kind == "recur")
    assert any(op.kind == "random_normal" for op in recur.regions[0].ops), "the draw was hoisted out of the step"
    for hs in (got["hs"], want["hs"]):
        steps = np.diff(np.concatenate([np.zeros((1, 500, 4)), hs]), axis=0)  # each step's noise
        assert not np.allclose(steps[0], steps[1])
        assert abs(steps.std() - 1) < 0.05


# ----------------------------------------------------------------------------- generate


GEN = """
block gen_step(h, prev, V: int) {
  e = embed(prev, V, 4)
  h2 = tanh(dense(e, 6) + dense(h, 6, bias=false))
  return h2, dense(h2, V) * 3
}
network G {
  input h: f32[N, 6]
  output greedy = generate(gen_step, init=h, start=1, max_len=7, V=9, name="g")
  output top1 = generate(gen_step, init=h, start=1, max_len=7, V=9, name="g2", sample=true, top_k=1)
  output any = generate(gen_step, init=h, start=1, max_len=7, V=9, name="g3", sample=true, temperature=2.0)
}
"""


def test_sampling_generate_with_top_k_1_is_greedy():
    compiled = netc.compile_source(GEN, seed=0)
    weights = dict(compiled.params)
    for name in compiled.params:  # every decoder gets the greedy one's step weights
        tag, local = name.split(".", 1)
        if tag in ("g2", "g3"):
            weights[name] = compiled.params["g." + local]
    model = lower_graph(compiled.graph, weights, seed=0)
    session = make_session(model).session
    h = np.random.default_rng(0).standard_normal((64, 6)).astype(np.float32)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"h": h})))
    want = run_graph(compiled.graph, weights, {"h": h})
    np.testing.assert_array_equal(got["greedy"], want["greedy"])
    for out in (got, want):
        np.testing.assert_array_equal(out["top1"], out["greedy"])
        assert out["any"].shape == (7, 64) and ((out["any"] >= 0) & (out["any"] < 9)).all()
        assert not np.array_equal(out["any"], out["greedy"])  # temperature 2 over 9 classes wanders


def test_verify_checks_draws_and_structure():
    compiled = netc.compile_source(GEN, seed=0)
    report = verify(compiled.graph, compiled.params, compiled.model, seeds=(0, 1))
    assert report.ok
    assert {op.label for op, _ in report.draws} == {"g2", "g3"}
    assert [c.note for c in report.outputs if c.name == "greedy"] == [""]
    assert all("random" in c.note for c in report.outputs if c.name != "greedy")


@pytest.mark.parametrize("expr", ["x + random_normal(like=x)", "x * bernoulli(0.5, like=x)"])
def test_verify_reports_random_outputs_by_structure(expr):
    compiled = netc.compile_source(f"network V {{\n  input x: f32[N, 16]\n  output y = {expr}\n}}\n")
    report = verify(compiled.graph, compiled.params, compiled.model)
    assert report.ok and len(report.draws) == 1


def test_gumbel_max_and_multinomial_agree_with_softmax():
    """examples/gumbel_sampling.net draws the same distribution two independent ways."""
    compiled = netc.compile_file(EXAMPLES / "gumbel_sampling.net", seed=0)
    n = 20_000
    x = np.tile(np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32), (n, 1))
    session = make_session(compiled.model).session
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    want = run_graph(compiled.graph, compiled.params, {"x": x})
    logits = x[0] @ compiled.params["dense0.weight"] + compiled.params["dense0.bias"]
    p = softmax(logits.astype(np.float64) / 0.8)
    rare = p * n < 5  # classes expected fewer than 5 times share one bin, as chi-square needs
    probs = np.append(p[~rare], p[rare].sum()) if rare.any() else p
    for side, out in (("onnxruntime", got), ("reference", want)):
        for name in ("ids", "gumbel_ids"):
            counts = np.bincount(out[name], minlength=10)
            binned = np.append(counts[~rare], counts[rare].sum()) if rare.any() else counts
            assert chi2(binned, probs) < chi2_critical(len(probs) - 1), (side, name, counts)


def test_a_named_draw_keeps_its_stream_when_others_are_added():
    one = "network M {\n  input x: f32[N, 4]\n  output y = random_normal(like=x, name=\"eps\")\n}\n"
    two = ("network M {\n  input x: f32[N, 4]\n  a = random_normal(like=x)\n"
           "  output y = random_normal(like=x, name=\"eps\") + 0 * a\n}\n")
    x = np.zeros((100, 4), np.float32)
    ys = []
    for text in (one, two):
        compiled = netc.compile_source(text, seed=2)
        ys.append(run_graph(compiled.graph, compiled.params, {"x": x})["y"])
        ys.append(make_session(compiled.model).session.run(["y"], {"x": x})[0])
    np.testing.assert_array_equal(ys[0], ys[2])  # the reference
    np.testing.assert_array_equal(ys[1], ys[3])  # onnxruntime


def test_a_loop_that_draws_is_not_hoisted_out_of_an_outer_step():
    text = """
block inner(d, t) {
  return d + t + random_normal(dim(d, 0), 3)
}
block outer(s, x, ys) {
  n = recur(inner, ys, init=zeros(dim(s, 0), 3))
  return s + x + n[0]
}
network M {
  input x: f32[T, N, 3]
  input y: f32[U, N, 3]
  input s0: f32[N, 3]
  output out = recur(outer, x, init=s0, ys=y)
}
"""
    compiled = netc.compile_source(text)
    (outer,) = [op for op in compiled.graph.ops if op.kind == "recur"]
    assert "recur" in [op.kind for op in outer.regions[0].ops]  # its input ys is invariant, its draws are not
    x = np.zeros((2, 400, 3), np.float32)
    got = make_session(compiled.model).session.run(None, {"x": x, "y": x[:1], "s0": x[0]})[0]
    assert not np.allclose(got[1] - got[0], got[0])  # step 2 added new noise, not step 1's again
