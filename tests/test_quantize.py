"""int8 models (`netc compile --quantize`, onnxruntime.quantization) pass
`netc verify --against-f32` within the documented tolerance, and the misuses are clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from netc.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_dynamic_mlp_passes_against_f32(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mlp.int8.onnx"
    assert main(["compile", str(EXAMPLES / "mnist_mlp.net"), "-o", str(out), "--quantize", "dynamic"]) == 0
    assert "MatMulInteger" in _ops(out)
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    capsys.readouterr()
    assert main(["verify", str(EXAMPLES / "mnist_mlp.net"), "--against-f32", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top-1 agreement" in text and "ok: 1/1 outputs" in text


def test_dynamic_lstm_is_quantized(tmp_path: Path) -> None:
    source = tmp_path / "tagger.net"
    source.write_text("network T {\n  input x: f32[S, N, 8]\n"
                      "  output y = x -> lstm(16, bidirectional=true) -> dense(5) -> softmax\n}\n")
    out = tmp_path / "t.int8.onnx"
    assert main(["compile", str(source), "-o", str(out), "--quantize", "dynamic"]) == 0
    assert "DynamicQuantizeLSTM" in _ops(out)  # the gate-reordered weights were folded first
    assert main(["verify", str(source), "--against-f32", str(out)]) == 0


CNN = """network SmallCNN(classes: int = 10) {
  input image: f32[N, 3, 32, 32]
  h = image -> conv2d(16, kernel=3, pad=1, act=relu) -> maxpool(2)
            -> conv2d(32, kernel=3, pad=1, act=relu) -> maxpool(2)
  output logits = h -> flatten -> dense(64, act=relu) -> dense(classes)
}
"""


def test_static_convnet_with_calibration_data(tmp_path: Path, capsys) -> None:
    source = tmp_path / "cnn.net"
    source.write_text(CNN)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", image=rng.standard_normal((32, 3, 32, 32)).astype(np.float32))
    np.savez(tmp_path / "data.npz", image=rng.standard_normal((96, 3, 32, 32)).astype(np.float32))
    out = tmp_path / "cnn.int8.onnx"
    assert main(["compile", str(source), "-o", str(out), "--quantize", "static",
                 "--calibrate", str(tmp_path / "cal.npz")]) == 0
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(out)
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    capsys.readouterr()
    assert main(["verify", str(source), "--against-f32", str(out), "--data", str(tmp_path / "data.npz")]) == 0
    assert "of 96" in capsys.readouterr().out  # every row of the data compared


def test_quantize_misuse_is_a_clear_error(tmp_path: Path, capsys) -> None:
    net = str(EXAMPLES / "lenet5.net")
    assert main(["compile", net, "-o", str(tmp_path / "a.onnx"), "--quantize", "static"]) == 1
    assert "needs calibration data" in capsys.readouterr().err
    np.savez(tmp_path / "cal.npz", wrong=np.zeros((2, 1, 32, 32), np.float32))
    assert main(["compile", net, "-o", str(tmp_path / "a.onnx"), "--quantize", "static",
                 "--calibrate", str(tmp_path / "cal.npz")]) == 1
    assert "no array for input(s) image" in capsys.readouterr().err
    assert main(["compile", net, "-o", str(tmp_path / "a.onnx"), "--calibrate", str(tmp_path / "cal.npz")]) == 1
    assert "--calibrate needs --quantize static" in capsys.readouterr().err
    assert not (tmp_path / "a.onnx").exists()


def test_against_f32_refuses_another_seed(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mlp.int8.onnx"
    assert main(["compile", str(EXAMPLES / "mnist_mlp.net"), "-o", str(out), "--quantize", "dynamic",
                 "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["verify", str(EXAMPLES / "mnist_mlp.net"), "--against-f32", str(out)]) == 1
    assert "compiled with seed '3'" in capsys.readouterr().err


def test_plain_compile_still_does_not_load_onnxruntime(tmp_path: Path) -> None:
    code = ("import sys\nfrom netc.cli import main\n"
            f"main(['compile', {str(EXAMPLES / 'lenet5.net')!r}, '-o', {str(tmp_path / 'm.onnx')!r}])\n"
            "print('LOADED', 'onnxruntime' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED False" in out


@pytest.mark.parametrize("flag", ["--data"])
def test_data_without_against_f32(flag: str, tmp_path: Path, capsys) -> None:
    np.savez(tmp_path / "d.npz", image=np.zeros((2, 784), np.float32))
    assert main(["verify", str(EXAMPLES / "mnist_mlp.net"), flag, str(tmp_path / "d.npz")]) == 1
    assert "--data applies to --against-f32" in capsys.readouterr().err
