"""int8 models (`netc compile --quantize`, onnxruntime.quantization) pass
`netc verify --against-f32` within the documented tolerance, and the misuses are clear errors."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from netc import api
from netc.cli import main
from netc.int8 import random_feeds
from netc.runtime.against_f32 import wilson_interval
from netc.runtime.quantize import output_layers
from netc.runtime.session import make_session

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _count(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_dynamic_mlp_passes_against_f32(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mlp.int8.onnx"
    assert main(["compile", str(EXAMPLES / "mnist_mlp.net"), "-o", str(out), "--quantize", "dynamic"]) == 0
    ops = _count(out)  # the two hidden layers int8, the output layer (dense2) f32
    assert ops["MatMulInteger"] == 2 and ops["MatMul"] + ops["Gemm"] == 1
    last = next(n for n in onnx.load(str(out)).graph.node if n.op_type in ("MatMul", "Gemm"))
    assert last.name.startswith("dense2")
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    capsys.readouterr()
    assert main(["verify", str(EXAMPLES / "mnist_mlp.net"), "--against-f32", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top-1 agreement" in text and "ok: 1/1 outputs" in text
    assert " of 96 (95% interval " in text  # 3 seeds x 32 rows


def test_wilson_interval_textbook_values() -> None:
    low, high = wilson_interval(0.5, 100)  # 50 of 100
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0.0, 10)  # none of 10
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(1.0, 384)[0] == pytest.approx(0.9901, abs=1e-4)  # 384 rows can show >= 0.99


def test_quantize_all_quantizes_the_output_layer(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mlp.all.onnx"
    assert main(["compile", str(EXAMPLES / "mnist_mlp.net"), "-o", str(out), "--quantize", "dynamic",
                 "--quantize-all"]) == 0
    ops = _count(out)
    assert ops["MatMulInteger"] == 3 and ops["MatMul"] + ops["Gemm"] == 0
    capsys.readouterr()
    assert main(["verify", str(EXAMPLES / "mnist_mlp.net"), "--against-f32", str(out)]) == 0
    assert main(["compile", str(EXAMPLES / "mnist_mlp.net"), "-o", str(tmp_path / "b.onnx"), "--quantize-all"]) == 1
    assert "--quantize-all needs --quantize" in capsys.readouterr().err


def test_tagger_passes_against_f32_on_words_across_the_vocabulary(tmp_path: Path, capsys) -> None:
    net = EXAMPLES / "bilstm_tagger.net"
    out = tmp_path / "tagger.int8.onnx"
    assert main(["compile", str(net), "-o", str(out), "--quantize", "dynamic"]) == 0
    ops = _count(out)
    assert ops["DynamicQuantizeLSTM"] == 2 and ops["MatMul"] == 1  # the output layer (dense0) f32
    compiled = api.compile_file(net)
    session = make_session(compiled.model).session
    words = np.concatenate([f["words"].ravel() for f in random_feeds(compiled.graph, session, 2)])
    assert words.min() >= 0 and words.max() < 5000 and len(np.unique(words)) > 1000  # not only 0 and 1
    capsys.readouterr()
    assert main(["verify", str(net), "--against-f32", str(out)]) == 0
    assert "of 3072" in capsys.readouterr().out  # 3 seeds x T=32 x N=32 words


def _graph(nodes: list, outputs: list[str], weights: list[str]) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.ones((4, 4), np.float32), w) for w in weights]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])], outs, inits)
    return helper.make_model(graph)


def test_output_layers_walks_back_through_bias_softmax_and_layout() -> None:
    model = _graph([helper.make_node("MatMul", ["x", "w0"], ["h"], name="hidden"),
                    helper.make_node("Relu", ["h"], ["r"], name="relu"),
                    helper.make_node("MatMul", ["r", "w1"], ["z"], name="head"),
                    helper.make_node("Add", ["b", "z"], ["zb"], name="bias"),  # the constant first
                    helper.make_node("Reshape", ["zb", "shape"], ["y"], name="reshape"),
                    helper.make_node("Softmax", ["y"], ["probs"], name="softmax"),
                    helper.make_node("Gemm", ["r", "w2"], ["score"], name="second_head"),
                    helper.make_node("MatMul", ["x", "r"], ["mixed"], name="no_weight"),
                    helper.make_node("Concat", ["h", "r"], ["joined"], name="concat", axis=1),
                    helper.make_node("Add", ["h", "r"], ["residual"], name="residual")],
                   ["probs", "score", "mixed", "joined", "residual"], ["w0", "w1", "w2", "b", "shape"])
    # a MatMul of two activations has no weight to keep; a Concat is no layer; a residual
    # sum has no one layer behind it
    assert output_layers(model) == ["head", "second_head"]


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
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    # the output layer dense(classes) reads its f32 weight, not a DequantizeLinear's output
    head = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul")][-1]
    assert head.input[1] in {i.name for i in model.graph.initializer}
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
