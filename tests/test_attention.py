"""Attention beyond the per-op parity cases: the three lowerings of multihead_attention
against the reference (ONNX Attention at opset 23, the contrib node, the decomposed graph),
the measured auto choice, hoisting of the additive key projection, the standard library
import, the sinusoidal table's values, and the Transformer example's command line."""

from __future__ import annotations

import math

import numpy as np
import pytest

import netc
from netc import cli
from netc.compiler.lowering import lower_graph
from netc.compiler.ops.mha_choice import choose_mha_lowering
from netc.dsl.errors import NetcError, NetcShapeError
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session
from tests.conftest import EXAMPLES, assert_close, check_onnx, random_inputs

FORMS = {"decomposed": 21, "onnx": 23, "contrib": 21}
CONFIGS = {
    "self": ("f32[T, N, 8]", "multihead_attention(x, heads=2{L})", {}),
    "causal": ("f32[T, N, 8]", "multihead_attention(x, heads=4, causal=true{L})", {}),
    "padding": ("f32[T, N, 8]", "multihead_attention(x, heads=2, key_padding_mask=pad{L})", {"pad": "bool[N, T]"}),
    "cross_lengths_batch_first": ("f32[N, T, 8]", "multihead_attention(x, m, heads=4, lengths=lens, batch_first=true{L})",
                                  {"m": "f32[N, S, 8]", "lens": "i32[N]"}),
    "float_mask_no_bias": ("f32[T, N, 8]", "multihead_attention(x, heads=2, bias=false, attn_mask=am{L})",
                           {"am": "f32[T, T]"}),
    "bool_mask_kdim": ("f32[T, N, 8]", "multihead_attention(x, m, m, heads=2, attn_mask=am{L})",
                       {"m": "f32[S, N, 3]", "am": "bool[T, S]"}),
}


def _source(form: str, config: str) -> str:
    xt, call, extra = CONFIGS[config]
    lines = ["network M {", f"  input x: {xt}", *(f"  input {k}: {v}" for k, v in extra.items()),
             "  output y = " + call.replace("{L}", f', lowering="{form}"'), "}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_lowerings_agree_with_reference(form, config):
    compiled = netc.compile_source(_source(form, config), opset=FORMS[form])
    check_onnx(compiled.model)
    ops = {n.op_type for n in compiled.model.graph.node}
    assert {"decomposed": "Softmax", "onnx": "Attention", "contrib": "MultiHeadAttention"}[form] in ops
    session = make_session(compiled.model).session
    for seed in range(2):
        feeds = random_inputs(compiled.graph, seed, int_high=5, sizes={"T": 4, "S": 5})
        if "pad" in feeds:
            feeds["pad"][0] = True  # an example with every key padded: zero context, not NaN
        if "lens" in feeds:
            feeds["lens"][0] = 0
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        want = run_graph(compiled.graph, compiled.params, feeds)
        assert np.isfinite(got["y"]).all()
        assert_close(got, want, "f32", f"{form} {config} seed {seed}")


def test_grouped_query_heads_with_onnx_attention():
    src = "network M {\n  input x: f32[T, N, 8]\n  output y = multihead_attention(x, heads=4, kv_heads=2, " \
          'causal=true, lowering="onnx")\n}\n'
    compiled = netc.compile_source(src, opset=23)
    feeds = random_inputs(compiled.graph, 0, sizes={"T": 5})
    got = make_session(compiled.model).session.run(None, feeds)[0]
    np.testing.assert_allclose(got, run_graph(compiled.graph, compiled.params, feeds)["y"], rtol=1e-4, atol=1e-5)


def _mha_op(src: str):
    graph = netc.compile_source(src).graph
    return next(op for op in graph.ops if op.kind == "multihead_attention")


@pytest.mark.parametrize(("T", "extra", "form"), [
    ("T", "", "decomposed"),           # symbolic: standard ONNX, as fast for common lengths
    ("512", "", "contrib"),
    ("1024", "", "contrib"),
    ("128", "", "decomposed"),         # short: not told apart, the plain graph
    ("T", ", return_weights=true", "decomposed"),
    ("T", ", kv_heads=2", "decomposed"),
])
def test_auto_lowering_follows_the_measurements(T, extra, form):
    out = "y, w" if "weights" in extra else "y"
    outs = "  output a = y\n  output b = w\n" if "weights" in extra else "  output a = y\n"
    src = f"network M {{\n  input x: f32[{T}, 1, 16]\n  {out} = multihead_attention(x, heads=4{extra})\n{outs}}}\n"
    assert choose_mha_lowering(_mha_op(src), 21) == form


def test_forced_onnx_lowering_needs_opset_23():
    src = 'network M {\n  input x: f32[T, N, 8]\n  output y = multihead_attention(x, heads=2, lowering="onnx")\n}\n'
    with pytest.raises(NetcShapeError, match="opset 23"):
        netc.compile_source(src)


def test_additive_key_projection_is_hoisted_out_of_generate():
    (graph,) = netc.check_file(EXAMPLES / "bahdanau_translator.net")
    top = [op.kind for op in graph.ops]
    gen = next(op for op in graph.ops if op.kind == "generate")
    inner = [op.kind for op in gen.regions[0].ops]
    assert "attention" in inner
    keys = [op for op in graph.ops if op.kind == "dense" and op.label.endswith("attention0")]
    assert keys and keys[0].inputs[0].type.rank == 3, top


def test_std_library_is_importable_from_any_folder(tmp_path):
    path = tmp_path / "deep" / "model.net"
    path.parent.mkdir()
    path.write_text('import "std/transformer.net"\nnetwork M {\n  input x: f32[T, N, 8]\n'
                    "  output y = x -> feed_forward(16) -> encoder_layer(2, 16, norm_first=true)\n}\n")
    (graph,) = netc.check_file(path)
    names = {p.name for p in graph.params}
    assert "feed_forward0.linear1.weight" in names
    assert "encoder_layer0.self_attn.in_proj_weight" in names
    assert "encoder_layer0.norm2.scale" in names


def test_std_library_errors_point_into_the_library_and_the_call(tmp_path):
    path = tmp_path / "m.net"
    path.write_text('import "std/transformer.net"\nnetwork M {\n  input x: f32[T, N, 10]\n'
                    "  output y = encoder_layer(x, 3, 16)\n}\n")
    with pytest.raises(NetcError) as err:
        netc.check_file(path)
    assert "heads=3 does not divide the embedding width 10" in str(err.value)
    assert err.value.span.file.endswith("std/transformer.net")
    assert any("m.net" in str(span) for span, _ in err.value.notes)


def test_sinusoidal_positions_match_the_formula():
    src = "network M {\n  input x: f32[T, N, 6]\n  output y = positional_encoding(x)\n}\n"
    compiled = netc.compile_source(src)
    x = np.zeros((7, 1, 6), np.float32)
    got = make_session(compiled.model).session.run(None, {"x": x})[0][:, 0]
    for t in range(7):
        for i in range(3):
            rate = 1 / 10000 ** (2 * i / 6)
            assert math.isclose(got[t, 2 * i], math.sin(t * rate), abs_tol=1e-5)
            assert math.isclose(got[t, 2 * i + 1], math.cos(t * rate), abs_tol=1e-5)


def test_rms_norm_lowers_to_rmsnormalization_at_opset_23():
    src = "network M {\n  input x: f32[N, 8]\n  output y = rms_norm(x, eps=0.01)\n}\n"
    compiled = netc.compile_source(src, opset=23)
    assert "RMSNormalization" in {n.op_type for n in compiled.model.graph.node}
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    got = make_session(compiled.model).session.run(None, {"x": x})[0]
    want = run_graph(compiled.graph, compiled.params, {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    model21 = lower_graph(compiled.graph, compiled.params, 21)
    np.testing.assert_allclose(make_session(model21).session.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-5)


def test_transformer_encoder_compiles_at_a_fixed_length(tmp_path):
    out = tmp_path / "enc.onnx"
    settings = ["--set", "T=128", "--set", "layers=1", "--set", "vocab=100"]
    assert cli.main(["compile", str(EXAMPLES / "transformer_encoder.net"), *settings, "-o", str(out)]) == 0
    assert out.stat().st_size > 0


def test_kv_cache_generation_matches_recomputation():
    """examples/kv_cache_lm.net: the cached and the recomputing decoder share their
    parameters and generate the same ids."""
    path = EXAMPLES / "kv_cache_lm.net"
    settings = {"V": 50, "d": 16, "heads": 2, "M": 12}
    cached = netc.compile_file(path, network="CachedLM", settings=settings, seed=3)
    recompute = netc.check_file(path, settings=settings)[1]
    assert {p.name: p.shape for p in recompute.params} == {p.name: p.shape for p in cached.graph.params}
    model = lower_graph(recompute, cached.params)
    check_onnx(model)
    prompt = {"prompt": np.array([1, 7, 30], np.int64)}
    want = make_session(cached.model).session.run(None, prompt)[0]
    got = make_session(model).session.run(None, prompt)[0]
    assert want.shape == (12, 3)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(run_graph(recompute, cached.params, prompt)["ids"], want)


def test_beam_search_over_a_key_value_cache_matches_the_reference():
    """Beam search reorders states along their batch axis, here axis 1 of the caches [M, N, d]."""
    text = (EXAMPLES / "kv_cache_lm.net").read_text()
    text = text.replace("init=(z, z, z, z, zeros(N, dtype=i32)), start=prompt, stop=none, max_len=M,",
                        "init=(z, z, z, z, zeros(N, dtype=i32)), start=prompt, stop=3, max_len=M, beam=3,")
    assert "beam=3" in text
    compiled = netc.compile_source(text, network="CachedLM", settings={"V": 8, "d": 16, "heads": 2, "M": 6},
                                   seed=1)
    check_onnx(compiled.model)
    session = make_session(compiled.model).session
    for prompt in ([1, 5], [0, 7, 2]):
        feeds = {"prompt": np.array(prompt, np.int64)}
        got = session.run(None, feeds)[0]
        want = run_graph(compiled.graph, compiled.params, feeds)["ids"]
        np.testing.assert_array_equal(got, want)


def test_beam_search_is_greedy_with_one_hypothesis_and_exact_with_enough():
    """beam=1 is greedy decoding; with V hypotheses over 2 steps every 2-token prefix
    competes, so the result is the most probable sequence (checked by enumerating all V^2)."""
    defs = """
block gen_step(h, prev, V: int) {
  h2 = tanh(dense(embed(prev, V, 4), 6) + dense(h, 6, bias=false))
  return h2, dense(h2, V, bias_init=uniform(low=-1, high=1)) * 2
}
"""

    def run(options: str, seed: int):
        src = defs + ("network C {\n  input h: f32[N, 6]\n  output out = generate(gen_step, init=h, start=1, "
                      f"V=4{options})\n}}\n")
        c = netc.compile_source(src, seed=seed)
        x = random_inputs(c.graph, seed, sizes={"N": 5})
        return c, x, make_session(c.model).session.run(None, x)[0]

    for seed in range(3):
        _, _, greedy = run(", max_len=5", seed)
        _, _, one = run(", max_len=5, beam=1", seed)
        np.testing.assert_array_equal(one, greedy)
        compiled, x, best = run(", max_len=2, beam=4", seed)
        every = [np.array([[a] * 5, [b] * 5], np.int64) for a in range(4) for b in range(4)]
        scores = np.stack([_logprob(compiled, x, ids) for ids in every])  # [16, N]
        got = _logprob(compiled, x, best)
        np.testing.assert_allclose(got, scores.max(axis=0), rtol=1e-6, atol=1e-6)


def _logprob(compiled, feeds, ids) -> np.ndarray:
    """Sum of log-probabilities of `ids` under the step block (teacher-forced), per example."""
    from netc.runtime.reference.interpreter import run_region

    op = next(o for o in compiled.graph.ops if o.kind == "generate")
    body = op.regions[0]
    k = op.attrs["n_state"]
    state = [feeds["h"]]
    prev = np.ones(ids.shape[1], np.int64)
    record: dict[int, np.ndarray] = {}
    run_graph(compiled.graph, compiled.params, feeds, record=record)
    captured = {id(v): compiled.params[v.name] if v.param is not None else record[id(v)]
                for v in op.inputs[k + 1:]}
    total = np.zeros(ids.shape[1])
    for t in range(ids.shape[0]):
        outs = run_region(body, [*state, prev], captured, {"N": ids.shape[1]})
        state, logits = outs[:k], outs[k].astype(np.float64)
        logp = logits - logits.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        total += logp[np.arange(ids.shape[1]), ids[t]]
        prev = ids[t]
    return total
