"""The `netc` command line, driven in-process through `netc.cli.main` (plus one run of the
installed console script): every subcommand, exit codes, atomic outputs, weight files,
input checking, benchmark JSON and verification mismatches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from safetensors.numpy import save_file

import netc
from netc import cli
from netc.compiler.ir import DType, Graph, Init, Op, Param, TensorType, Value
from netc.dsl.errors import NetcInputError
from netc.runtime import inputs as inp
from netc.runtime.reference.registry import REFERENCE, RefEntry
from netc.runtime.verify import compare

MLP = """network M {
  input x: f32[N, 4]
  output y = x -> dense(3, act=relu) -> softmax
}
"""
TWO = """network A(units: int = 3) {
  input x: f32[N, 4]
  output y = x -> dense(units)
}

network B {
  input x: f32[2, 4]
  output y = x -> softmax
}
"""
BAD_SHAPE = """network M {
  input x: f32[N, 4]
  output y = x -> dense(3) -> conv2d(3, kernel=3)
}
"""


@pytest.fixture
def net(tmp_path):
    path = tmp_path / "m.net"
    path.write_text(MLP)
    return path


@pytest.fixture
def onnx_model(net, tmp_path):
    out = tmp_path / "m.onnx"
    netc.compile_file(net).save(out)
    return out


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------- usage
def test_help_lists_every_subcommand(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("check", "compile", "params", "run", "bench", "verify"):
        assert command in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("netc ")


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["check"], ["check", "m.net", "--set", "N"],
                                  ["check", "m.net", "--set", "2x=3"], ["check", "m.net", "--set", "N="],
                                  ["bench", "m.onnx", "--batch", "1,x"], ["bench", "m.onnx", "--batch", "0"],
                                  ["bench", "m.onnx", "--iterations", "3", "--seconds", "1"],
                                  ["run", "m.onnx", "--provider", "tpu"]])
def test_usage_errors_exit_2(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "usage: netc" in err


@pytest.mark.parametrize(("text", "value"), [("8", 8), ("-2", -2), ("0.5", 0.5), ("1e-3", 1e-3), ("true", True),
                                             ("False", False), ("relu", "relu"), ("'a b'", "a b"), ("inf", "inf")])
def test_set_values_are_typed(text, value):
    parsed = cli.parse_setting(f"name={text}")
    assert parsed == ("name", value) and type(parsed[1]) is type(value)


def test_set_given_twice_differently_is_an_input_error(capsys, net):
    code, _, err = run(capsys, "check", net, "--set", "N=2", "--set", "N=3")
    assert code == 1 and "given twice" in err


# --------------------------------------------------------------------------- check
def test_check_table(capsys, net):
    code, out, err = run(capsys, "check", net)
    assert code == 0, err
    assert out == """\
network M(x: f32[N, 4]) -> y: f32[N, 3]

layer     op       output     params  FLOPs
dense0    dense    f32[N, 3]      15     24
softmax0  softmax  f32[N, 3]       -     15

trainable parameters:     15
non-trainable parameters: 0
parameter memory:         60 B
total FLOPs:              39  (symbolic dims at their least sizes N=1; set sizes with --set N=...)
"""


def test_check_large_numbers_use_separators_and_units(capsys, tmp_path):
    path = tmp_path / "big.net"
    path.write_text("network Big {\n  input x: f32[N, 1000]\n  output y = x -> dense(2000) -> dense(1000)\n}\n")
    code, out, _ = run(capsys, "check", path, "--set", "N=8")
    assert code == 0
    assert "trainable parameters:     4,003,000" in out
    assert "total FLOPs:              64.0M (64,000,000)" in out
    assert "counted as 1" not in out  # N was given a value


def test_check_every_network_or_one(capsys, tmp_path):
    path = tmp_path / "two.net"
    path.write_text(TWO)
    code, out, _ = run(capsys, "check", path)
    assert code == 0 and "network A(" in out and "network B(" in out
    code, out, _ = run(capsys, "check", path, "--network", "A", "--set", "units=7")
    assert code == 0 and "network B(" not in out and "f32[N, 7]" in out
    code, _, err = run(capsys, "check", path, "--network", "Q")
    assert code == 1 and "no network named 'Q'" in err


def test_check_error_is_located_without_traceback(capsys, tmp_path):
    path = tmp_path / "bad.net"
    path.write_text(BAD_SHAPE)
    code, out, err = run(capsys, "check", path)
    assert code == 1 and out == ""
    assert f"{path}:3:" in err and "error:" in err and "^" in err
    assert "Traceback" not in err


def test_check_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "check", tmp_path / "nope.net")
    assert code == 1 and "not found" in err


# --------------------------------------------------------------------------- params
def test_params_lists_names_shapes_init(capsys, net):
    code, out, _ = run(capsys, "params", net)
    assert code == 0
    assert "dense0.weight  [4, 3]  f32    glorot_uniform  yes" in out
    assert "dense0.bias    [3]     f32    zeros" in out
    assert "total: 15 values (15 trainable)" in out


# --------------------------------------------------------------------------- compile
def test_compile_writes_a_valid_model(capsys, net, tmp_path):
    out = tmp_path / "model.onnx"
    code, stdout, _ = run(capsys, "compile", net, "-o", out, "--seed", "3")
    assert code == 0
    assert stdout.startswith(f"wrote {out}: network M, 15 parameters (15 trainable)")
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert {p.key: p.value for p in model.metadata_props}["netc.seed"] == "3"


def test_compile_default_output_is_stem_in_current_folder(capsys, net, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, _ = run(capsys, "compile", net)
    assert code == 0 and files_in(work) == {"m.onnx"}


def test_compile_refuses_to_overwrite_its_input(capsys, net):
    code, _, err = run(capsys, "compile", net, "-o", net)
    assert code == 1 and "refusing to overwrite" in err
    assert net.read_text() == MLP


def test_compile_error_leaves_no_file(capsys, tmp_path):
    path = tmp_path / "bad.net"
    path.write_text(BAD_SHAPE)
    code, _, _ = run(capsys, "compile", path, "-o", tmp_path / "bad.onnx")
    assert code == 1 and files_in(tmp_path) == {"bad.net"}


def test_compile_into_missing_folder(capsys, net, tmp_path):
    code, _, err = run(capsys, "compile", net, "-o", tmp_path / "no" / "m.onnx")
    assert code == 1 and "does not exist" in err


def test_compile_bad_opset(capsys, net, tmp_path):
    code, _, err = run(capsys, "compile", net, "-o", tmp_path / "m.onnx", "--opset", "7")
    assert code == 1 and "opset 7 is not supported" in err


def test_interrupt_leaves_no_partial_file(capsys, net, tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr("netc.files.os.fsync", interrupted)
    code, _, err = run(capsys, "compile", net, "-o", tmp_path / "m.onnx")
    assert code == 130 and "interrupted" in err
    assert files_in(tmp_path) == {"m.net"}


def test_internal_error_exit_3_with_traceback(capsys, net, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr("netc.api.compile_to_file", broken)
    code, _, err = run(capsys, "compile", net, "-o", net.with_suffix(".onnx"))
    assert code == 3
    assert "netc: internal error, please report" in err and "Traceback" in err and "boom" in err


# --------------------------------------------------------------------------- weights
def _trained():
    rng = np.random.default_rng(0)
    return {"dense0.weight": rng.standard_normal((4, 3)).astype(np.float32),
            "dense0.bias": rng.standard_normal(3).astype(np.float32)}


def _initializers(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(path)
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_compile_with_weights(capsys, net, tmp_path, fmt):
    weights = tmp_path / f"w.{fmt}"
    tensors = _trained()
    np.savez(weights, **tensors) if fmt == "npz" else save_file(tensors, str(weights))
    out = tmp_path / "m.onnx"
    code, _, err = run(capsys, "compile", net, "-o", out, "--weights", weights)
    assert code == 0, err
    stored = _initializers(out)
    for name, value in tensors.items():
        np.testing.assert_array_equal(stored[name], value)


@pytest.mark.parametrize(("fmt", "change", "message"), [
    ("npz", "missing", "missing 1 tensor(s): dense0.bias"),
    ("npz", "extra", "1 unexpected tensor(s): dense1.weight"),
    ("npz", "shape", "'dense0.weight' has shape [3, 4], the network expects [4, 3]"),
    ("safetensors", "missing", "missing 1 tensor(s): dense0.bias"),
    ("safetensors", "extra", "1 unexpected tensor(s): dense1.weight"),
    ("safetensors", "shape", "'dense0.weight' has shape [3, 4], the network expects [4, 3]"),
])
def test_compile_with_mismatched_weights(capsys, net, tmp_path, fmt, change, message):
    tensors = _trained()
    if change == "missing":
        del tensors["dense0.bias"]
    elif change == "extra":
        tensors["dense1.weight"] = np.zeros((2, 2), np.float32)
    else:
        tensors["dense0.weight"] = np.zeros((3, 4), np.float32)
    weights = tmp_path / f"w.{fmt}"
    np.savez(weights, **tensors) if fmt == "npz" else save_file(tensors, str(weights))
    code, _, err = run(capsys, "compile", net, "-o", tmp_path / "m.onnx", "--weights", weights)
    assert code == 1 and message in err and "netc params" in err
    assert "m.onnx" not in files_in(tmp_path)


def test_compile_with_corrupt_weights(capsys, net, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"not a safetensors file")
    code, _, err = run(capsys, "compile", net, "-o", tmp_path / "m.onnx", "--weights", weights)
    assert code == 1 and "cannot read weight file" in err


# --------------------------------------------------------------------------- run
def test_run_random_summary(capsys, onnx_model):
    code, out, err = run(capsys, "run", onnx_model, "--random", "--set", "N=2")
    assert code == 0, err
    assert out.startswith("y: f32[2, 3]  min ") and "mean 0.333333" in out
    assert "random inputs (seed 0): x: f32[2, 4]" in err


def test_run_net_file_directly(capsys, net):
    code, out, _ = run(capsys, "run", net, "--random")
    assert code == 0 and out.startswith("y: f32[1, 3]")


def test_run_inputs_from_files_and_save(capsys, onnx_model, tmp_path):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "in.npz", x=x)
    out = tmp_path / "out.npz"
    code, stdout, _ = run(capsys, "run", onnx_model, "--input", f"x={tmp_path / 'x.npy'}", "-o", out)
    assert code == 0 and stdout == f"wrote {out}: y\n"
    with np.load(out, allow_pickle=False) as saved:
        first = saved["y"]
    assert first.shape == (2, 3)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, rtol=1e-6)
    code, stdout, _ = run(capsys, "run", onnx_model, "--inputs", tmp_path / "in.npz")
    assert code == 0 and stdout.startswith("y: f32[2, 3]")


@pytest.mark.parametrize(("array", "name", "message"), [
    (np.zeros((2, 4), np.float64), "x", "input 'x' has dtype float64; the model expects x: f32[N, 4]"),
    (np.zeros((2, 5), np.float32), "x", "axis 1 must be 4"),
    (np.zeros((2, 4, 1), np.float32), "x", "rank 3"),
    (np.zeros((2, 4), np.float32), "image", "the model has no input named 'image'"),
])
def test_run_wrong_inputs(capsys, onnx_model, tmp_path, array, name, message):
    np.save(tmp_path / "a.npy", array)
    out = tmp_path / "out.npz"
    code, _, err = run(capsys, "run", onnx_model, "--input", f"{name}={tmp_path / 'a.npy'}", "-o", out)
    assert code == 1 and message in err
    assert not out.exists()


def test_run_missing_input_suggests_random(capsys, onnx_model):
    code, _, err = run(capsys, "run", onnx_model)
    assert code == 1 and "missing input: x: f32[N, 4]" in err and "--random" in err


def test_run_refuses_pickles(capsys, onnx_model, tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run(capsys, "run", onnx_model, "--input", f"x={tmp_path / 'obj.npy'}")
    assert code == 1 and "Python objects" in err


def test_run_refuses_to_overwrite_an_input(capsys, onnx_model, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.zeros((1, 4), np.float32))
    before = (tmp_path / "in.npz").read_bytes()
    code, _, err = run(capsys, "run", onnx_model, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "in.npz")
    assert code == 1 and "refusing to overwrite" in err
    assert (tmp_path / "in.npz").read_bytes() == before


def test_run_unknown_dim_and_missing_model(capsys, onnx_model, tmp_path):
    code, _, err = run(capsys, "run", onnx_model, "--random", "--set", "T=3")
    assert code == 1 and "no symbolic dim named 'T'" in err and "N" in err
    code, _, err = run(capsys, "run", tmp_path / "none.onnx", "--random")
    assert code == 1 and "model file not found" in err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00junk")
    code, _, err = run(capsys, "run", junk, "--random")
    assert code == 1 and "onnxruntime cannot load" in err


def test_provider_choices_match_the_session():
    from netc.runtime.session import PROVIDERS

    assert set(cli.PROVIDERS) == set(PROVIDERS)


def test_run_cuda_falls_back_and_says_so(capsys, onnx_model):
    code, _, err = run(capsys, "run", onnx_model, "--random", "--provider", "cuda")
    assert code == 0
    from netc.runtime.session import available_providers

    if "cuda" not in available_providers():
        assert "running on CPU" in err


# --------------------------------------------------------------------------- bench
def test_bench_json(capsys, onnx_model):
    code, out, _ = run(capsys, "bench", onnx_model, "--batch", "1,4", "--iterations", "3", "--warmup", "1",
                       "--threads", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["batch_dim"] == "N"
    assert [r["batch"] for r in data["results"]] == [1, 4]
    for r in data["results"]:
        assert r["iterations"] == 3 and r["provider"] == "cpu" and r["threads"] == 1
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["samples_per_s"] > 0


def test_bench_table_with_time_budget(capsys, net):
    code, out, _ = run(capsys, "bench", net, "--seconds", "0.05", "--warmup", "0")
    assert code == 0
    assert "provider cpu" in out and "p50 ms" in out and "samples/s" in out


def test_bench_without_batch_dim(capsys, tmp_path):
    path = tmp_path / "fixed.net"
    path.write_text("network F {\n  input x: f32[2, 4]\n  output y = x -> softmax\n}\n")
    code, _, err = run(capsys, "bench", path, "--batch", "1,8", "--iterations", "1")
    assert code == 1 and "no symbolic batch dim" in err
    code, _, _ = run(capsys, "bench", path, "--iterations", "2")
    assert code == 0


# --------------------------------------------------------------------------- verify
def test_verify_ok(capsys, net):
    code, out, err = run(capsys, "verify", net, "--seeds", "2", "--per-op")
    assert code == 0, err
    assert "y       f32[N, 3]" in out and "ok: 1/1 outputs" in out
    assert "dense0 (dense)" in out and "softmax0 (softmax)" in out


def test_verify_mismatch_points_at_the_op(capsys, net, monkeypatch):
    right = REFERENCE["softmax"].fn
    monkeypatch.setitem(REFERENCE, "softmax", RefEntry(lambda x, axis: right(x, axis=axis) * 1.01))
    code, out, err = run(capsys, "verify", net)
    assert code == 1
    assert "MISMATCH" in out
    assert f"{net}:3:" in err and "first disagree at softmax0 (softmax)" in err and "^~~" in err


def test_verify_loose_tolerance_accepts(capsys, net, monkeypatch):
    right = REFERENCE["softmax"].fn
    monkeypatch.setitem(REFERENCE, "softmax", RefEntry(lambda x, axis: right(x, axis=axis) * 1.01))
    code, _, _ = run(capsys, "verify", net, "--rtol", "0.05")
    assert code == 0


def test_verify_embedding_ids_stay_in_range(capsys, tmp_path):
    path = tmp_path / "emb.net"
    path.write_text("network E {\n  input ids: i64[N, T]\n  output y = ids -> embed(7, 2) -> flatten\n}\n")
    code, out, err = run(capsys, "verify", path, "--seeds", "2")
    assert code == 0, err
    assert "sizes N=2, T=3 | N=3, T=2" in out


def test_compare_tensors():
    f = np.array([1.0, 2.0, np.nan], np.float32)
    assert compare("a", f, f.copy()).ok
    bad = compare("a", np.array([1.0, 2.0, 3.0], np.float32), f)
    assert not bad.ok and "NaN" in bad.note
    assert not compare("a", f[:2], f).ok
    close = compare("a", np.float32([1.00001]), np.float32([1.0]))
    assert close.ok and close.max_abs == pytest.approx(1e-5, rel=1e-2)
    ints = compare("k", np.int64([1, 2]), np.int64([1, 3]), rtol=1.0, atol=5.0)
    assert not ints.ok  # integers compare exactly, whatever the float tolerances


def test_python_api_run_and_verify(net):
    outputs = netc.run(net, random=True, sizes={"N": 5}, seed=1)
    assert outputs["y"].shape == (5, 3)
    compiled = netc.compile_file(net)
    outputs = netc.run(compiled, {"x": np.ones((5, 4), np.float32)})
    assert outputs["y"].shape == (5, 3)
    with pytest.raises(NetcInputError, match="missing input"):
        netc.run(compiled, {})
    report = netc.verify_file(net, seeds=[4], per_op=True)
    assert report.ok and report.seeds == [4] and len(report.per_op) == 2


# --------------------------------------------------------------------------- inputs
def test_dim_expressions():
    assert inp.dim_symbols("(T + 1)//2 + N") == ["T", "N"]
    assert inp.eval_dim("(T + 1)//2", {"T": 5}) == 3
    assert inp.eval_dim("2*T", {}) is None
    assert inp.eval_dim("T - 1", {"T": 4}) == 3 and inp.eval_dim("-T + 9", {"T": 4}) == 5
    assert inp.dim_symbols("batch-size") == ["batch-size"]  # not arithmetic: an opaque name


def test_check_inputs_composite_dims():
    spec = inp.InputSpec("x", np.dtype(np.float32), ("T", "2*T"), "f32")
    assert inp.check_inputs([spec], {"x": np.zeros((3, 6), np.float32)}) == {"T": 3}
    with pytest.raises(NetcInputError, match="expected 2\\*T = 6"):
        inp.check_inputs([spec], {"x": np.zeros((3, 5), np.float32)})


def test_integer_inputs_take_bounds_from_consumers():
    ids = Value("ids", TensorType(DType.i64, (3,)))
    table = Param("embed0.table", (7, 2), DType.f32, Init("normal"))
    table_value = Value(table.name, TensorType(DType.f32, (7, 2)), None, table)
    out = Value("e", TensorType(DType.f32, (3, 2)))
    graph = Graph("G", [ids], {"e": out}, [Op("embed", [ids, table_value], [out], {}, None)], [table])
    assert inp.integer_bounds(graph) == {"ids": 7}
    specs = inp.graph_specs(graph)
    values = inp.random_inputs(specs, seed=0)["ids"]
    assert values.dtype == np.int64 and values.max() < 7
    plain = inp.InputSpec("k", np.dtype(np.int32), (50,), "i32")
    assert set(np.unique(inp.random_inputs([plain])["k"])) <= {0, 1}


# --------------------------------------------------------------------------- the installed script
def test_console_script_and_module(net, tmp_path):
    script = Path(sys.executable).with_name("netc")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    ok = subprocess.run([str(script), "check", str(net)], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0 and "dense0" in ok.stdout
    bad = tmp_path / "bad.net"
    bad.write_text(BAD_SHAPE)
    fail = subprocess.run([sys.executable, "-m", "netc", "check", str(bad)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert fail.returncode == 1 and "error:" in fail.stderr and "Traceback" not in fail.stderr
