"""Robustness, second round: each class of defect has its root fixed and a test here.

- least sizes of symbolic dims (a text CNN over T checks, runs, verifies and benches);
- the error boundary: OS, memory, NumPy and every onnxruntime error is exit 1, not 3;
- files bounded before they are read (lying headers, zip bombs, huge sources);
- outputs that never clobber what is not ours (devices, FIFOs, imports, symlinks);
- overflow of initialisers and weights; CLI numbers; stdout closed or full;
- one compile-time work budget per file.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import netc
from netc import api, cli
from netc.array_files import read_npz
from netc.boundary import NetcEnvironmentError, translate
from netc.compiler import dims as D
from netc.compiler.dim_bounds import MinSizes
from netc.compiler.limits import DEFAULT_LIMITS, Limits, default_param_bytes, machine_memory
from netc.dsl.errors import (
    NetcError,
    NetcLimitError,
    NetcShapeError,
    NetcTypeError,
    NetcWeightsError,
)

TEXT_CNN = """network TextCNN {
  input ids: i64[N, T]
  e = embed(ids, 5000, 64) -> transpose(0, 2, 1)
  h = conv1d(e, 100, kernel=5, act=relu) -> global_maxpool -> flatten
  output logits = dense(h, 4)
}
"""
SMALL = "network M {\n  input x: f32[N, 3]\n  output y = dense(x, 4)\n}\n"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def text_cnn(tmp_path: Path) -> Path:
    path = tmp_path / "textcnn.net"
    path.write_text(TEXT_CNN)
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.net"
    path.write_text(SMALL)
    return path


# --------------------------------------------------------------------------- least sizes
def test_min_sizes_of_common_dims() -> None:
    T, H = D.symbol("T"), D.symbol("H")
    sizes = MinSizes()
    sizes.require(D.sub(T, 4), None)  # a valid conv of width 5
    assert sizes.minima == {"T": 5}
    sizes.require(D.add(D.floordiv(D.sub(T, 3), 2), 1), None)  # stride 2, width 3: weaker
    assert sizes.minima == {"T": 5}
    sizes.require(D.floordiv(T, 8), None)  # a pyramid of three poolings needs 8
    assert sizes.minima == {"T": 8}
    half = D.floordiv(D.sub(H, 2), 2)
    with pytest.raises(NetcShapeError):  # a product with a factor that may be <= 0 may fall
        MinSizes().require(D.mul(half, D.symbol("W")), None)
    sizes.require(half, None)  # flatten after a pooling: the factor was a dim first
    sizes.require(D.mul(half, D.symbol("W")), None)
    assert sizes.minima["H"] == 4 and sizes.minima.get("W", 1) == 1
    assert sizes.requirement_text() == "T ≥ 8, H ≥ 4"


@pytest.mark.parametrize("dim", [D.neg(D.symbol("N")), D.sub(D.symbol("T"), D.symbol("N")),
                                 D.sub(D.floordiv(D.symbol("T"), 2), D.symbol("T"))])
def test_dims_that_shrink_are_refused(dim) -> None:
    with pytest.raises(NetcShapeError, match="dimension"):
        MinSizes().require(dim, None)


def test_text_cnn_checks_with_its_least_size(capsys, text_cnn: Path) -> None:
    code, out, _ = run(capsys, "check", text_cnn)
    assert code == 0
    assert "needs T ≥ 5" in out and "textcnn.net:4:7" in out
    flops = out.split("total FLOPs:")[1]
    assert "-" not in flops.split("(")[0] and "T=5" in flops


def test_text_cnn_runs_verifies_and_benches_without_set(capsys, text_cnn: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "run", text_cnn, "--random")
    assert code == 0 and "ids: i64[1, 5]" in err
    code, out, _ = run(capsys, "verify", text_cnn, "--seeds", "2")
    assert code == 0 and "T=5" in out and "T=6" in out
    code, out, _ = run(capsys, "bench", text_cnn, "--iterations", "2", "--warmup", "0", "--json")
    assert code == 0 and json.loads(out)["results"][0]["iterations"] == 2
    model = tmp_path / "t.onnx"
    assert run(capsys, "compile", text_cnn, "-o", model)[0] == 0
    meta = {p.key: p.value for p in onnx.load(model).metadata_props}
    assert meta["netc.min_sizes"] == "T=5"
    assert run(capsys, "run", model, "--random")[0] == 0
    code, _, err = run(capsys, "run", model, "--random", "--set", "T=3")
    assert code == 1 and "T ≥ 5" in err and "--set T=5" in err


# --------------------------------------------------------------------------- the error boundary
def test_translate_leaves_bugs_alone() -> None:
    assert translate(ValueError("x")) is None
    assert translate(RecursionError()) is None
    assert isinstance(translate(MemoryError("Unable to allocate 14.6 TiB")), NetcEnvironmentError)
    err = translate(OSError(28, "No space left on device", "out.onnx"))
    assert isinstance(err, NetcEnvironmentError) and "out.onnx" in err.message


def test_integer_division_verifies_and_a_zero_divisor_is_located(capsys, tmp_path: Path) -> None:
    net = tmp_path / "div.net"
    net.write_text("network M {\n  input a: i32[N, 4]\n  input b: i32[N, 4]\n  output y = a // b\n}\n")
    assert run(capsys, "verify", net)[0] == 0  # random divisors start at 1
    np.save(tmp_path / "a.npy", np.ones((1, 4), np.int32))
    np.save(tmp_path / "b.npy", np.zeros((1, 4), np.int32))
    code, _, err = run(capsys, "run", net, "--input", f"a={tmp_path / 'a.npy'}", "--input", f"b={tmp_path / 'b.npy'}")
    assert code == 1 and "div.net:4:" in err and "division by zero" in err.lower()


LENGTHS = """network M {
  input x: f32[T, N, 8]
  input lengths: i32[N]
  h = lstm(x, 16, lengths=lengths)
  output y = last(h, lengths=lengths)
}
"""


@pytest.mark.parametrize("length, line", [(7, 4), (0, 5), (-1, 4)])
def test_lengths_out_of_range_are_refused_at_their_op(capsys, tmp_path: Path, length: int, line: int) -> None:
    net = tmp_path / "lens.net"
    net.write_text(LENGTHS)
    np.save(tmp_path / "x.npy", np.zeros((3, 1, 8), np.float32))
    np.save(tmp_path / "l.npy", np.array([length], np.int32))
    code, _, err = run(capsys, "run", net, "--input", f"x={tmp_path / 'x.npy'}", "--input",
                       f"lengths={tmp_path / 'l.npy'}")
    assert code == 1 and f"lens.net:{line}:" in err and f"holds {length}" in err


def test_negative_embed_ids_are_refused(capsys, text_cnn: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "ids.npy", np.array([[1, -1, 3, 4, 5]]))
    code, _, err = run(capsys, "run", text_cnn, "--input", f"ids={tmp_path / 'ids.npy'}")
    assert code == 1 and "textcnn.net:3:7" in err and "0..4999" in err


def _foreign_model(path: Path, dim_param: str = "N", shape=(3, 5)) -> None:
    graph = oh.make_graph([oh.make_node("Reshape", ["x", "s"], ["y"])], "g",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [dim_param, 4])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                          [oh.make_tensor("s", onnx.TensorProto.INT64, [2], list(shape))])
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]), path)


def test_bad_reshape_in_a_foreign_model(capsys, tmp_path: Path) -> None:
    _foreign_model(tmp_path / "m.onnx")
    code, _, err = run(capsys, "run", tmp_path / "m.onnx", "--random")
    assert code == 1 and "onnxruntime failed in Reshape" in err and "onnxruntime::" not in err


def test_huge_dim_param_is_a_name(capsys, tmp_path: Path) -> None:
    _foreign_model(tmp_path / "m.onnx", " + ".join(["N"] * 100_000), (1, 4))
    code, _, _ = run(capsys, "run", tmp_path / "m.onnx", "--random")
    assert code in (0, 1)


# --------------------------------------------------------------------------- bounded reads
def _npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_lying_npy_header_is_refused_before_allocating(capsys, small: Path, tmp_path: Path) -> None:
    (tmp_path / "huge.npy").write_bytes(_npy_header((10**12, 4)))
    code, _, err = run(capsys, "run", small, "--input", f"x={tmp_path / 'huge.npy'}")
    assert code == 1 and "14.6 TiB" in err and "over the limit" in err
    (tmp_path / "short.npy").write_bytes(_npy_header((100, 3)) + b"\0" * 16)
    code, _, err = run(capsys, "run", small, "--input", f"x={tmp_path / 'short.npy'}")
    assert code == 1 and "holds only 16 B" in err


def _bomb(path: Path, name: str = "x.npy", values: int = 50_000_000) -> None:
    """An archive of ~200 KB that expands to 200 MB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(name, "w", force_zip64=True) as f:
        f.write(_npy_header((values,)))
        chunk = bytes(2**22)
        left = values * 4
        while left:
            f.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))


def test_zip_members_are_checked_before_decompressing(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.npz"
    _bomb(bomb)
    assert bomb.stat().st_size < 2**20
    with pytest.raises(NetcError, match=r"would expand to 190\.7 MiB, over the limit"):
        read_npz(bomb, 2**20)
    # An unexpected name or shape is reported without being read: a placeholder holds no memory.
    arrays = read_npz(bomb, 2**30, {"x": (None, 3)})
    assert arrays["x"].shape == (50_000_000,) and arrays["x"].strides == (0,)


def test_weights_of_unexpected_names_are_not_decompressed(small: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "w.npz"
    _bomb(bomb, "other.npy")
    with pytest.raises(NetcWeightsError, match="unexpected tensor"):
        netc.compile_file(small, weights=bomb)


def test_f8_safetensors_is_refused_by_name(small: Path, tmp_path: Path) -> None:
    header = json.dumps({"dense0.weight": {"dtype": "F8_E4M3", "shape": [3, 4], "data_offsets": [0, 12]}}).encode()
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(12))
    with pytest.raises(NetcWeightsError, match=r"dense0\.weight' has dtype F8_E4M3"):
        netc.compile_file(small, weights=path)


def test_source_files_are_capped_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.net"
    with open(big, "wb") as f:  # a sparse 2 GB file: reading it would take 2 GB
        f.truncate(2 * 2**30)
    with pytest.raises(NetcLimitError, match="max_source_bytes"):
        netc.check_file(big)
    with pytest.raises(NetcLimitError, match="over the limit of 10 bytes"):
        netc.check_file(tmp_path / "s.net", source=SMALL, limits=Limits(max_source_bytes=10))


def test_a_long_line_is_quoted_as_a_window(tmp_path: Path) -> None:
    path = tmp_path / "long.net"
    path.write_text("network M {\n  input x: f32[N, 4]\n  output y = x + " + "a" * 2_000_000 + "\n}\n")
    with pytest.raises(NetcError) as info:
        netc.check_file(path)
    assert len(info.value.render()) < 5000


# --------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("target", ["/dev/null", "fifo", "folder", "sub/"])
def test_outputs_that_are_not_regular_files_are_refused(capsys, small: Path, tmp_path: Path, target: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    out = target if target.startswith("/") else f"{tmp_path}/{target}"
    code, _, err = run(capsys, "compile", small, "-o", out)
    assert code == 1 and "error:" in err
    assert Path("/dev/null").is_char_device() and (tmp_path / "fifo").is_fifo()
    assert not (tmp_path / "sub").exists()


def test_an_imported_file_is_never_an_output(capsys, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    lib = tmp_path / "lib" / "mlp.net"
    lib.write_text("block mlp(x) { return x -> dense(4) }\n")
    app = tmp_path / "app.net"
    app.write_text('import "lib/mlp.net"\nnetwork A {\n  input x: f32[N, 3]\n  output y = mlp(x)\n}\n')
    code, _, err = run(capsys, "compile", app, "-o", tmp_path / "lib" / "." / "mlp.net")
    assert code == 1 and "refusing to overwrite the input file" in err
    assert lib.read_text().startswith("block mlp")


def test_a_250_character_name_and_a_symlinked_output(capsys, small: Path, tmp_path: Path, monkeypatch) -> None:
    long = tmp_path / ("m" * 245 + ".onnx")
    assert run(capsys, "compile", small, "-o", long)[0] == 0 and long.is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link.onnx"
    link.symlink_to(elsewhere / "model.onnx")
    monkeypatch.setattr(api, "EXTERNAL_DATA_THRESHOLD", 0)  # the data file goes beside the name given
    wide = tmp_path / "wide.net"
    wide.write_text(SMALL.replace("dense(x, 4)", "dense(x, 512)"))
    assert run(capsys, "compile", wide, "-o", link)[0] == 0
    assert link.is_symlink() and (elsewhere / "model.onnx").is_file()
    assert [p.name for p in elsewhere.iterdir()] == ["model.onnx"]  # written through the link
    assert [p.name.startswith("link.onnx.") for p in tmp_path.iterdir() if p.name.endswith(".data")] == [True]
    assert onnx.load(str(link)).graph.initializer  # loads through the name given, data and all


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_the_work(capsys, small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    code, _, err = run(capsys, "compile", small, "-o", folder / "m.onnx")
    assert code == 1 and "not writable" in err


# --------------------------------------------------------------------------- overflow
@pytest.mark.parametrize("dtype, init", [("f16", "constant(70000)"), ("f32", "constant(1e39)")])
def test_initialisers_beyond_the_dtype_are_errors(tmp_path: Path, dtype: str, init: str) -> None:
    source = f"network M {{\n  input x: {dtype}[N, 3]\n  output y = dense(x, 4, bias_init={init})\n}}\n"
    with pytest.raises(NetcTypeError, match=r"'dense0\.bias' makes values beyond the range"):
        netc.compile_source(source)


def test_f64_weights_beyond_f32_are_errors(small: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", **{"dense0.weight": np.full((3, 4), 1e300), "dense0.bias": np.zeros(4)})
    with pytest.raises(NetcWeightsError, match=r"'dense0\.weight' holds 12 value"):
        netc.compile_file(small, weights=tmp_path / "w.npz", cast_weights=True)  # f64 -> f32 only when asked


# --------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("argv", [["bench", "--seed", "-1"], ["bench", "--threads", str(2**40)],
                                  ["bench", "--seconds", "inf"], ["verify", "--seeds", str(10**20)],
                                  ["check", "--max-param-bytes", "0"]])
def test_numbers_are_checked_by_argparse(capsys, small: Path, argv: list[str]) -> None:
    code, _, err = run(capsys, argv[0], small, *argv[1:])
    assert (code == 2 and "expected" in err) or "at least" in err


def test_missing_import_root_is_refused(capsys, small: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "check", small, "--allow-import-root", tmp_path / "nowhere")
    assert code == 1 and "no such folder" in err


@pytest.mark.parametrize("redirect", ["closed", "full"])
def test_stdout_closed_or_full_is_exit_1(small: Path, redirect: str) -> None:
    if redirect == "full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    stdout = open("/dev/full", "w") if redirect == "full" else subprocess.DEVNULL  # noqa: SIM115
    code = "import os, sys; from netc.cli import main; os.close(1) if sys.argv[1] == 'closed' else None; " \
           "sys.exit(main(['check', sys.argv[2]]))"
    done = subprocess.run([sys.executable, "-c", code, redirect, str(small)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "error:" in done.stderr


def test_default_parameter_limit_fits_the_machine() -> None:
    memory = machine_memory()
    assert DEFAULT_LIMITS.max_param_bytes == default_param_bytes() <= 8 * 2**30
    if memory is not None:
        assert default_param_bytes() <= max(memory // 5, 2**20)


# --------------------------------------------------------------------------- the work budget
def test_the_loop_budget_is_shared_by_every_network_of_a_file() -> None:
    body = "  input x: f32[N, 4]\n  for i in range(40000) { n = i }\n  output y = x\n"
    source = "".join(f"network M{k} {{\n{body}}}\n" for k in range(3))
    with pytest.raises(NetcLimitError, match="counted over the whole file"):
        netc.check_file("three.net", source=source)


# --------------------------------------------------------------------------- the fuzzer's system classes
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import fuzz_system  # noqa: E402


@pytest.mark.parametrize("kind", fuzz_system.KINDS)
def test_system_fuzz_cases_end_in_success_or_a_netc_error(tmp_path: Path, kind: str) -> None:
    """A few cases of each system class (tools/fuzz.py runs them by the hundred thousand)."""
    for index in range(12):
        try:
            fuzz_system.run_case(kind, 0, index, tmp_path)
        except NetcError as err:
            err.render()


def test_random_inputs_beyond_the_input_limit_are_refused(capsys, text_cnn: Path, tmp_path: Path) -> None:
    model = tmp_path / "t.onnx"
    assert run(capsys, "compile", text_cnn, "-o", model)[0] == 0
    for argv in (["run", model, "--random", "--set", "N=1000000000000"], ["bench", model, "--batch", "1000000000000"]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "over the limit of 4 GiB" in err


def test_first_line_of_a_foreign_error_message() -> None:
    from netc.dsl.errors import first_line

    assert first_line(RuntimeError()) == ""  # no IndexError for an empty message
    assert first_line(RuntimeError("  bad model\n  at node 3")) == "bad model"
    assert len(first_line(RuntimeError("x" * 1000), 300)) == 300
