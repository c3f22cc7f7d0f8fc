"""Cold compile: `netc compile` streams the weights into the file (the exact bytes of the
in-memory model), keeps its memory near the largest weight, caches the parser tables, and
imports nothing that only running a model needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netc
from netc import api
from netc.dsl import parser_cache

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.parametrize("example", ["mnist_mlp", "bag_of_embeddings", "bigru_tagger", "char_generator",
                                     "tree_rnn_sentiment",
                                     # shared(...) parameters, random ops seeded from the compile
                                     # seed, array and identity initialisers, new conv/norm ops
                                     "tied_embedding_lm", "vae_decoder", "spatial_transformer",
                                     "dcgan_generator", "alexnet_lrn", "irnn", "sampling_decoder",
                                     "gumbel_sampling", "peephole_lstm_lm"])
def test_streamed_file_is_the_serialized_model(example: str, tmp_path: Path) -> None:
    path = EXAMPLES / f"{example}.net"
    for network in api.load(path).networks:  # every network of the file
        graph = api.compile_to_file(path, tmp_path / "m.onnx", seed=7, network=network)
        assert graph.params  # the comparison covers streamed weights
        want = netc.compile_file(path, seed=7, network=network).model.SerializeToString()
        assert (tmp_path / "m.onnx").read_bytes() == want, network


def test_streamed_file_with_a_weight_file(tmp_path: Path) -> None:
    path = EXAMPLES / "mnist_mlp.net"
    params = netc.compile_file(path, seed=3).params
    rng = np.random.default_rng(0)
    weights = {k: rng.standard_normal(v.shape).astype(np.float64) for k, v in params.items()}  # cast on load
    np.savez(tmp_path / "w.npz", **weights)
    with pytest.raises(netc.NetcError, match="--cast-weights"):  # f64 for f32: refused unless asked
        api.compile_to_file(path, tmp_path / "m.onnx", weights=tmp_path / "w.npz")
    assert not (tmp_path / "m.onnx").exists()
    api.compile_to_file(path, tmp_path / "m.onnx", weights=tmp_path / "w.npz", cast_weights=True)
    want = netc.compile_file(path, weights=tmp_path / "w.npz", cast_weights=True).model.SerializeToString()
    assert (tmp_path / "m.onnx").read_bytes() == want


INITIALISED = """network Inits {
  param q: f32[12, 5] = orthogonal(gain=2.0)
  param r: f32[12, 12] = identity
  param a: f32[2, 3] = [[1, 2, 3], [4, 5, 6]]
  param u: f32[7, 3] = uniform(-1.0, 1.0)
  input x: f32[N, 5]
  output y = (x -> dense(5)) @ transpose(q) @ r
  output z = a + u[0:2, :]
}
"""


def test_pieces_give_every_initialiser_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pieces of 8 bytes: each initialiser is handed out 2 values at a time, in order; the
    # matrix-shaped ones (orthogonal, identity, array) are made whole and sliced.
    from netc.compiler.params import drawer, initialise

    source = tmp_path / "inits.net"
    source.write_text(INITIALISED)
    graph = netc.check_file(source)[0]
    for p in graph.params:
        whole = initialise(p, 5).reshape(-1)
        out = np.empty_like(whole)
        fill = drawer(p, 5)
        for start in range(0, whole.size, 3):
            fill(out[start:start + 3])
        np.testing.assert_array_equal(out, whole, err_msg=p.name)
    monkeypatch.setattr(api, "PIECE_BYTES", 8)
    api.compile_to_file(source, tmp_path / "m.onnx", seed=5)
    assert (tmp_path / "m.onnx").read_bytes() == netc.compile_file(source, seed=5).model.SerializeToString()


def test_a_bad_weight_file_writes_nothing(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", nothing=np.zeros(3))
    with pytest.raises(netc.NetcError, match="missing"):
        api.compile_to_file(EXAMPLES / "mnist_mlp.net", tmp_path / "m.onnx", weights=tmp_path / "w.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def test_compile_does_not_import_the_runtime(tmp_path: Path) -> None:
    code = ("import sys\nfrom netc.cli import main\n"
            f"rc = main(['compile', {str(EXAMPLES / 'mnist_mlp.net')!r}, '-o', {str(tmp_path / 'm.onnx')!r}])\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'torch', 'safetensors')"
            " or m.startswith('netc.runtime'))\n"
            "print('RESULT', rc, bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "RESULT 0 []" in out


def test_compile_memory_is_a_few_pieces(tmp_path: Path) -> None:
    import harness

    # 4 weights of 25 MB: the in-memory path holds 3x the 100 MB; streaming, two 8 MB pieces.
    source = tmp_path / "wide.net"
    source.write_text("network Wide {\n  input x: f32[N, 2500]\n"
                      "  output y = x -> dense(2500) -> dense(2500) -> dense(2500) -> dense(2500)\n}\n")
    cli = [sys.executable, "-m", "netc"]
    check = harness.run_process([*cli, "check", str(source)])
    run = harness.run_process([*cli, "compile", str(source), "-o", str(tmp_path / "wide.onnx")])
    assert check.returncode == run.returncode == 0, run.stderr
    size = (tmp_path / "wide.onnx").stat().st_size
    assert size > 99e6
    assert run.max_rss_bytes - check.max_rss_bytes < 0.5 * size, (run.max_rss_bytes, check.max_rss_bytes)


def test_parser_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grammar = 'start: WORD+\nWORD: /[a-z]+/\n%ignore " "\n'
    options = {"parser": "lalr", "lexer": "basic"}
    monkeypatch.setenv("NETC_CACHE_DIR", str(tmp_path / "cache"))
    path = parser_cache.cache_path(grammar, options)
    assert path is not None and not path.exists()
    assert parser_cache.cached_lark(grammar, **options).parse("ab cd").children == ["ab", "cd"]
    assert path.exists()  # written on first use
    assert parser_cache.cached_lark(grammar, **options).parse("x").children == ["x"]  # read back
    path.write_bytes(b"not a parser")  # corrupt: ignored, rebuilt, rewritten
    assert parser_cache.cached_lark(grammar, **options).parse("y").children == ["y"]
    assert path.read_bytes() != b"not a parser"
    assert parser_cache.cache_path(grammar + "\n", options) != path  # another grammar, another file
    monkeypatch.setenv("NETC_CACHE_DIR", "")
    assert parser_cache.cache_path(grammar, options) is None
    monkeypatch.setenv("NETC_CACHE_DIR", str(tmp_path / "file"))
    (tmp_path / "file").write_text("a file where the folder should be")
    assert parser_cache.cached_lark(grammar, **options).parse("z").children == ["z"]  # works uncached


def test_grammar_cache_survives_a_fresh_process(tmp_path: Path) -> None:
    env = {**os.environ, "NETC_CACHE_DIR": str(tmp_path)}
    for _ in range(2):  # the first run writes the tables, the second reads them
        done = subprocess.run([sys.executable, "-m", "netc", "check", str(EXAMPLES / "mnist_mlp.net")],
                              env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
    assert len(list(tmp_path.glob("grammar-*.lark"))) == 1
