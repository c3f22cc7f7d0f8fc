"""Usability for users off the bundled path: bench on sequence models, onnxruntime failures
named at their culprit, one `act=` spelling, keyword settings and a short repr in notebooks,
one input dtype policy, and a README whose commands parse."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest

import netc
from netc import cli
from netc.runtime.inputs import MIN_SIZES_KEY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- bench
def test_bench_of_a_time_major_tagger_batches_n(capsys) -> None:
    code, out, err = run(capsys, "bench", EXAMPLES / "bilstm_tagger.net", "--batch", "1,32", "--json",
                         "--iterations", "3", "--warmup", "0", "--set", "V=50", "--set", "hidden=8",
                         "--set", "dim=8")
    assert code == 0, err
    data = json.loads(out)
    assert data["batch_dim"] == "N"
    assert [r["batch"] for r in data["results"]] == [1, 32]
    for r in data["results"]:  # every figure carries its unit in its name, or is a count
        assert set(r) == {"batch", "iterations", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms",
                          "samples_per_s", "provider", "threads"}
    assert data["warnings"] and "only 3 timed run(s)" in data["warnings"][0]
    assert "warning: the percentiles rest on only 3" in err


SEQ = "network S {\n  input x: f32[T, B, 4]\n  output y = x -> dense(2)\n}\n"


def test_bench_skips_sequence_axes_and_takes_batch_dim(capsys, tmp_path: Path) -> None:
    path = tmp_path / "s.net"
    path.write_text(SEQ)
    code, out, _ = run(capsys, "bench", path, "--batch", "2", "--json", "--iterations", "20", "--warmup", "0")
    assert code == 0 and json.loads(out)["batch_dim"] == "B" and json.loads(out)["warnings"] == []
    code, out, _ = run(capsys, "bench", path, "--batch", "2", "--json", "--iterations", "2", "--batch-dim", "T")
    assert code == 0 and json.loads(out)["batch_dim"] == "T"
    code, _, err = run(capsys, "bench", path, "--batch-dim", "Q", "--iterations", "1")
    assert code == 1 and "no symbolic dim named 'Q'" in err and "T, B" in err


TEXT_CNN = """network TextCNN {
  input words: i64[N, T]
  h = words -> embed(100, 16) -> transpose([0, 2, 1]) -> conv1d(8, 3, act=relu)
  output y = h -> global_maxpool -> flatten -> dense(2)
}
"""


def test_onnxruntime_failures_in_bench_and_run_name_the_op(capsys, tmp_path: Path) -> None:
    """A failure inside onnxruntime (here: a conv wider than the sequence, in a compiled
    model whose T is symbolic) is exit 1 naming the op and the inputs, never a traceback."""
    path = tmp_path / "cnn.net"
    path.write_text(TEXT_CNN)
    netc.compile_file(path).save(tmp_path / "cnn.onnx")
    # netc's own model records T >= 3 and refuses T=2 before running; without that record
    # (a model from elsewhere) the conv fails inside onnxruntime.
    code, _, err = run(capsys, "run", tmp_path / "cnn.onnx", "--random", "--set", "T=2")
    assert code == 1 and "T ≥ 3" in err
    model = onnx.load(tmp_path / "cnn.onnx")
    kept = [p for p in model.metadata_props if p.key != MIN_SIZES_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, tmp_path / "cnn.onnx")
    for command in (["bench", tmp_path / "cnn.onnx", "--iterations", "2", "--set", "T=2"],
                    ["run", tmp_path / "cnn.onnx", "--random", "--set", "T=2"]):
        code, _, err = run(capsys, *command)
        assert code == 1, err
        assert "Traceback" not in err and "internal error" not in err
        assert "error: onnxruntime failed" in err and "node 'conv1d0'" in err
        assert "words: int64[1, 2]" in err and "\x1b[" not in err  # no onnxruntime log line
    # From a .net file the error also points at the source line of the op.
    np.save(tmp_path / "words.npy", np.zeros((1, 2), np.int64))
    code, _, err = run(capsys, "run", path, "--input", f"words={tmp_path / 'words.npy'}")
    assert code == 1 and "Traceback" not in err
    assert re.search(r"cnn\.net:3:58: error: .*conv1d", err), err


VOCAB = "network E {\n  input ids: i64[N, T]\n  output y = ids -> embed(5000, 4) -> dense(2)\n}\n"


def test_ids_out_of_vocabulary_name_the_input(capsys, tmp_path: Path) -> None:
    path = tmp_path / "e.net"
    path.write_text(VOCAB)
    ids = np.zeros((2, 3), np.int64)
    ids[1, 2] = 6000
    np.save(tmp_path / "ids.npy", ids)
    code, _, err = run(capsys, "run", path, "--input", f"ids={tmp_path / 'ids.npy'}")
    assert code == 1
    assert "input 'ids' has id 6000 at index [1, 2], the vocabulary is 5000" in err
    assert re.search(r"e\.net:3:\d+: note: the embed 'embed0'", err)
    assert "\x1b[" not in err and "sequential_executor" not in err
    netc.compile_file(path).save(tmp_path / "e.onnx")  # a compiled model: no source, still named
    code, _, err = run(capsys, "run", tmp_path / "e.onnx", "--input", f"ids={tmp_path / 'ids.npy'}")
    assert code == 1 and "Gather node 'embed0'" in err
    assert "input 'ids' holds an id of 6000; valid ids are 0..4999" in err


# --------------------------------------------------------------------------- act= and keywords
def test_act_takes_the_same_spelling_everywhere() -> None:
    bare = netc.compile_source("network A {\n  input x: f32[N, 4]\n  output y = x -> dense(3, act=relu)\n}\n")
    quoted = netc.compile_source('network A {\n  input x: f32[N, 4]\n  output y = x -> dense(3, act="relu")\n}\n')
    assert [n.op_type for n in bare.model.graph.node] == [n.op_type for n in quoted.model.graph.node]
    assert quoted.graph.ops[0].attrs["act"] == "relu"
    rnn = netc.check_file("r.net", source='network R {\n  input x: f32[T, N, 2]\n'
                                          '  output y = x -> rnn(3, act=relu) -> rnn(3, act="relu")\n}\n')
    assert [op.attrs["act"] for op in rnn[0].ops] == ["relu", "relu"]


def test_unknown_keyword_is_reported_before_a_missing_argument() -> None:
    with pytest.raises(netc.NetcError) as info:
        netc.compile_source("network C {\n  input x: f32[N, 3, 8, 8]\n  output y = x -> conv2d(16, kernal=3)\n}\n")
    assert "has no argument 'kernal'" in info.value.message and "did you mean 'kernel'?" in info.value.hints[0]


# --------------------------------------------------------------------------- notebook API
def test_repr_is_short_and_summary_is_the_check_table(capsys) -> None:
    compiled = netc.compile_file(EXAMPLES / "resnet18.net", size=64, classes=10)
    text = repr(compiled)
    assert len(text) < 300 and "ResNet18" in text and "11," in text and "opset 21" in text
    code, out, _ = run(capsys, "check", EXAMPLES / "resnet18.net", "--set", "size=64", "--set", "classes=10")
    assert code == 0 and compiled.summary() == out.rstrip("\n")
    html = compiled._repr_html_()
    assert html.startswith("<div>") and html.count("<tr>") == len(compiled.summary().splitlines()) - 7


def test_settings_by_keyword_or_dict() -> None:
    src = "network H(classes: int = 10) {\n  input x: f32[N, 4]\n  output y = x -> dense(classes)\n}\n"
    assert netc.compile_source(src, classes=3).graph.outputs["y"].type.shape[-1] == 3
    assert netc.compile_source(src, settings={"classes": 5}).graph.outputs["y"].type.shape[-1] == 5
    both = netc.compile_source(src, settings={"classes": 5}, N=2, seed=4)
    assert str(both.graph.outputs["y"].type) == "f32[2, 5]"
    assert netc.verify_file("h.net", source=src, classes=2, seeds=1).ok
    with pytest.raises(netc.NetcError, match="no parameter or dim"):
        netc.compile_source(src, clases=3)


def test_str_of_an_error_is_the_located_message() -> None:
    with pytest.raises(netc.NetcError) as info:
        netc.compile_source("network M {\n  input x: f32[N, 4]\n  output y = x -> dense(10, activation=relu)\n}\n",
                            name="m.net")
    text = str(info.value)
    assert text.startswith("m.net:3:29: error: dense() has no argument 'activation'")
    assert "^~~~" in text and "hint: did you mean 'act'?" in text


def test_input_dtype_policy_is_the_same_in_api_and_cli(capsys, tmp_path: Path) -> None:
    src = "network D {\n  input x: f32[N, 4]\n  input ids: i64[N]\n  output y = x -> dense(2)\n  output z = ids\n}\n"
    compiled = netc.compile_source(src)
    x64, ids32 = np.ones((2, 4)), np.arange(2, dtype=np.int32)
    with pytest.raises(netc.NetcError, match=r"(?s)has dtype float64.*cast_inputs=True"):
        netc.run(compiled, {"x": x64, "ids": ids32.astype(np.int64)})
    out = netc.run(compiled, {"x": x64, "ids": ids32}, cast_inputs=True)
    assert out["y"].dtype == np.float32 and out["z"].dtype == np.int64
    with pytest.raises(netc.NetcError, match="casts only within a kind"):
        netc.run(compiled, {"x": x64, "ids": np.zeros(2)}, cast_inputs=True)
    path = tmp_path / "d.net"
    path.write_text(src)
    np.save(tmp_path / "x.npy", x64)
    np.save(tmp_path / "ids.npy", ids32)
    args = ["run", path, "--input", f"x={tmp_path / 'x.npy'}", "--input", f"ids={tmp_path / 'ids.npy'}"]
    code, _, err = run(capsys, *args)
    assert code == 1 and "has dtype float64" in err and "--cast-inputs" in err
    code, out_text, _ = run(capsys, *args, "--cast-inputs")
    assert code == 0 and "y: f32[2, 2]" in out_text


def test_api_bench() -> None:
    compiled = netc.compile_source(SEQ)
    results = netc.bench(compiled, batches=[1, 3], iterations=2, warmup=0)
    assert [r.batch for r in results] == [1, 3] and all(r.p50_ms > 0 for r in results)


# --------------------------------------------------------------------------- README
def test_readme_commands_parse_and_name_real_files() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [line.split("#")[0].strip() for line in readme.splitlines() if line.startswith("    netc ")]
    assert len(commands) >= 7
    parser = cli.build_parser()
    for command in commands:
        argv = shlex.split(re.sub(r"\[[^\]]*\]", "", command))[1:]  # without optional [...] parts
        parser.parse_args(argv)  # exits (a failed test) on a stale flag
        for arg in argv:
            if arg.startswith("examples/"):
                assert (ROOT / arg).is_file(), arg
    assert ".venv/bin/netc" in readme and "3 an internal error" in readme and "np.save(" in readme
    quick = (ROOT / "tools" / "quickstart.sh").read_text()
    assert "RANDOM" in quick and "out/resnet50.onnx" in readme and "out/resnet50.onnx" in quick


TWO_VOCABS = """network T {
  input tags: i64[N]
  input ids: i64[N]
  output y = concat([tags -> embed(10, 4), ids -> embed(5000, 4)], axis=1)
}
"""


def test_the_note_points_at_the_embedding_of_that_vocabulary() -> None:
    compiled = netc.compile_source(TWO_VOCABS, name="t.net")
    with pytest.raises(netc.NetcError) as info:
        netc.run(compiled, {"tags": np.array([1, 2]), "ids": np.array([3, 5000])})
    assert "input 'ids' has id 5000" in info.value.message
    assert [note for _, note in info.value.notes] == ["the embed 'embed1' reading it"]


def test_pytorch_spellings_of_the_newer_ops_arguments() -> None:
    calls = {"x -> conv_transpose2d(2, 3, output_padding=1)": "output_pad",
             "x -> upsample(scale_factor=2)": "scale", "x -> resize(scale_factor=2)": "scale",
             "x + random_normal(like=x, std=0.1)": "scale", "x -> topk(2, dim=1)": "axis",
             "x -> gather(ids, dim=1)": "axis"}
    for expr, target in calls.items():
        src = f"network K {{\n  input x: f32[N, 3, 8, 8]\n  input ids: i64[2]\n  output y = {expr}\n}}\n"
        with pytest.raises(netc.NetcError) as info:
            netc.compile_source(src)
        assert f"did you mean '{target}'?" in info.value.hints[0], (expr, info.value.hints)


def test_indices_out_of_range_name_the_indexing_op_not_a_vocabulary() -> None:
    compiled = netc.compile_source("network G {\n  input x: f32[N, 5]\n  input i: i64[N, 2]\n"
                                   "  output y = take_along(x, i, axis=1)\n}\n")
    x = np.ones((2, 5), np.float32)
    assert netc.run(compiled, {"x": x, "i": np.array([[0, -5], [4, -1]])})["y"].shape == (2, 2)
    for bad in (5, -6):
        with pytest.raises(netc.NetcError) as info:
            netc.run(compiled, {"x": x, "i": np.array([[0, bad], [1, 2]])})
        assert f"input 'i' has index {bad} at [0, 1], for an axis of size 5 (valid indices -5..4" in info.value.message
        assert "vocabulary" not in str(info.value) and "take_along 'take_along0'" in info.value.notes[0][1]
