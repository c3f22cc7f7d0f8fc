"""Features of separate lines of work, used together: least sizes of symbolic dims with the
newer ops and with bench's batch dim; the error boundary and bounded reads in the
scale-out, picture and weight-import commands; their numeric options bounded."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import netc
from netc import cli

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "mnist_mlp.net"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_least_sizes_hold_for_the_newer_shape_rules() -> None:
    src = """network V {
  input x: f32[N, 3, T, T]
  input m: bool[K]
  input v: f32[K]
  output a = x -> conv_transpose2d(4, 3, stride=2, pad=2)
  output b = x -> resize(scale=0.5)
  output c = compress(v, m)
  output e = arange(dim(x, 2) - 3)
}
"""
    (graph,) = netc.check_file("v.net", source=src)
    # arange's length T - 3 binds (T >= 4); 2*T - 3 and T//2 then hold as well
    assert graph.min_sizes.minima["T"] == 4
    assert "T ≥ 4" in graph.min_sizes.requirement_text()
    with pytest.raises(netc.NetcError, match="runs the wrong way"):  # its own check, first
        netc.check_file("w.net", source="network W {\n  input x: f32[N, T]\n"
                                         "  output y = arange(dim(x, 1) - dim(x, 0))\n}\n")


SHRINKS = "network B {\n  input x: f32[N, 4]\n  output y = x[1:] -> dense(2)\n}\n"


def test_bench_sizes_the_batch_dim_from_its_least_size(capsys, tmp_path: Path) -> None:
    path = tmp_path / "b.net"
    path.write_text(SHRINKS)
    code, out, _ = run(capsys, "bench", path, "--iterations", "2", "--warmup", "0", "--json")
    assert code == 0 and '"batch": 2' in out
    code, _, err = run(capsys, "bench", path, "--iterations", "2", "--batch", "1,4")
    assert code == 1 and "N ≥ 2" in err and "--batch 2" in err


def _lying_npz(path: Path) -> None:
    """An archive whose member's header claims 1000 rows and holds 3."""
    body = np.zeros((3, 784), np.float32)
    with zipfile.ZipFile(path, "w") as archive, archive.open("image.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1000, 784)})
        f.write(body.tobytes())


def test_new_commands_report_mistakes_inside_the_error_boundary(capsys, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    _lying_npz(tmp_path / "data" / "a.npz")
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    (tmp_path / "file").write_text("x")
    cases = [
        (["batch", MLP, tmp_path / "data", "-o", tmp_path / "out"], "holds only"),
        (["weights", "import", tmp_path / "bad.safetensors", "--net", MLP, "-o", tmp_path / "w.npz"], "header"),
        (["export", "triton", MLP, "-o", tmp_path / "file"], "not a folder"),
        (["graph", MLP, "-o", tmp_path / "missing" / "g.dot"], "does not exist"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 1 and message in err and "internal error" not in err, (argv, err)
    assert not (tmp_path / "w.npz").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["batch", MLP, "d", "-o", "o", "--workers", "100000"],
                                  ["batch", MLP, "d", "-o", "o", "--batch-size", str(2**40)],
                                  ["export", "triton", MLP, "-o", "r", "--instances", str(10**20)],
                                  ["export", "triton", MLP, "-o", "r", "--max-batch", str(2**31)],
                                  ["view", MLP, "--port", "70000"]])
def test_scale_out_and_tool_numbers_are_bounded(capsys, argv) -> None:
    assert run(capsys, *argv)[0] == 2


CONV = "network C {\n  input x: f32[N, 2, T]\n  output y = x -> conv1d(4, 5)\n}\n"


def test_lsp_hover_counts_flops_at_the_least_sizes(tmp_path: Path) -> None:
    pytest.importorskip("pygls")
    from netc.lsp.analysis import Analyzer
    from netc.lsp.hover import hover

    path = str(tmp_path / "c.net")
    analysis = Analyzer().analyse(path, CONV)
    layer, _ = hover(analysis, 3, CONV.splitlines()[2].index("conv1d") + 1)
    network, _ = hover(analysis, 1, len("network ") + 1)
    # T >= 5 for a valid width-5 conv: 1 output step of 4 filters over 2x5 inputs, not a negative count
    assert "; 44 parameters; 80 FLOPs" in layer, layer
    assert "80 FLOPs (symbolic dims at their least sizes: T ≥ 5)" in network, network


def test_quiet_before_or_after_the_command_also_for_batch() -> None:
    parser = cli.build_parser()
    for argv in (["-q", "batch", "m.net", "d", "-o", "o"], ["batch", "m.net", "d", "-o", "o", "-q"],
                 ["-q", "check", "x.net"], ["check", "x.net", "-q"]):
        assert parser.parse_args(argv).quiet is True, argv
    assert parser.parse_args(["batch", "m.net", "d", "-o", "o"]).quiet is False
