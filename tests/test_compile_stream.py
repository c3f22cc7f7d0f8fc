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
                                     "tree_rnn_sentiment"])
def test_streamed_file_is_the_serialized_model(example: str, tmp_path: Path) -> None:
    path = EXAMPLES / f"{example}.net"
    graph = api.compile_to_file(path, tmp_path / "m.onnx", seed=7)
    assert graph.params  # the comparison covers streamed weights
    want = netc.compile_file(path, seed=7).model.SerializeToString()
    assert (tmp_path / "m.onnx").read_bytes() == want


def test_streamed_file_with_a_weight_file(tmp_path: Path) -> None:
    path = EXAMPLES / "mnist_mlp.net"
    params = netc.compile_file(path, seed=3).params
    rng = np.random.default_rng(0)
    weights = {k: rng.standard_normal(v.shape).astype(np.float64) for k, v in params.items()}  # cast on load
    np.savez(tmp_path / "w.npz", **weights)
    api.compile_to_file(path, tmp_path / "m.onnx", weights=tmp_path / "w.npz")
    want = netc.compile_file(path, weights=tmp_path / "w.npz").model.SerializeToString()
    assert (tmp_path / "m.onnx").read_bytes() == want


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
