"""`netc weights import`: PyTorch state dicts (safetensors) onto netc's parameter names,
checked output for output against PyTorch on a torchvision-faithful ResNet-18 and an LSTM
tagger with random weights; and the refusals (pickles, transposes, dtypes, leftovers)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import netc
from netc.cli import main
from netc.compiler.torch_import import group_modules, import_state_dict
from tests.conftest import randomise_batchnorm, torch_models

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402  (after the skip: needs torch)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_resnet18_from_pytorch_matches(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    module = torch_models().resnet18(num_classes=10)
    randomise_batchnorm(module)
    module.eval()
    save_file(module.state_dict(), str(tmp_path / "resnet18.safetensors"))
    code, out, err = _cli(capsys, "weights", "import", tmp_path / "resnet18.safetensors",
                          "--net", EXAMPLES / "resnet18.net", "--set", "classes=10", "--set", "size=64",
                          "-o", tmp_path / "w.npz")
    assert code == 0, err
    pairs = dict(re.findall(r"^\s+(\S+)\s+<- (\S+)", out, re.M))  # "  layer  <- module  (how)"
    assert pairs.get("stages0.basic2.shortcut0.conv2d0") == "layer2.0.downsample.0"
    assert pairs.get("stages0.basic2.shortcut0.batchnorm0") == "layer2.0.downsample.1"
    assert pairs.get("dense0") == "fc"
    assert "ignored (bookkeeping): 20 tensor(s)" in out  # num_batches_tracked
    compiled = netc.compile_file(EXAMPLES / "resnet18.net", settings={"classes": 10, "size": 64},
                                 weights=tmp_path / "w.npz")
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = netc.run(compiled, {"image": x})["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * max(float(np.abs(want).max()), 1.0))


class Tagger(torch.nn.Module):
    """embed -> 2-layer bidirectional LSTM -> linear -> softmax, time-major like netc."""

    def __init__(self, vocab: int, dim: int, hidden: int, labels: int):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, dim)
        self.lstm = torch.nn.LSTM(dim, hidden, num_layers=2, bidirectional=True)
        self.out = torch.nn.Linear(2 * hidden, labels)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embedding(words))
        return torch.softmax(self.out(h), dim=-1)


def test_lstm_tagger_from_pytorch_matches(tmp_path: Path, capsys) -> None:
    torch.manual_seed(1)
    V, dim, hidden, labels = 50, 12, 16, 7
    module = Tagger(V, dim, hidden, labels).eval()
    save_file(module.state_dict(), str(tmp_path / "tagger.safetensors"))
    settings = [f"V={V}", f"dim={dim}", f"hidden={hidden}", f"labels={labels}"]
    code, out, err = _cli(capsys, "weights", "import", tmp_path / "tagger.safetensors",
                          "--net", EXAMPLES / "bilstm_tagger.net", *[a for s in settings for a in ("--set", s)],
                          "-o", tmp_path / "w.safetensors")
    assert code == 0, err
    pairs = dict(re.findall(r"^\s+(\S+)\s+<- (\S+)", out, re.M))
    assert pairs == {"embed0": "embedding", "lstm0": "lstm", "dense0": "out"}
    compiled = netc.compile_file(EXAMPLES / "bilstm_tagger.net", weights=tmp_path / "w.safetensors",
                                 settings={"V": V, "dim": dim, "hidden": hidden, "labels": labels})
    words = np.random.default_rng(0).integers(0, V, (9, 3)).astype(np.int64)
    with torch.no_grad():
        want = module(torch.from_numpy(words)).numpy()
    got = netc.run(compiled, {"words": words})["tags"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


GRU_NET = """network G(reset: str = "after") {
  input x: f32[T, N, 3]
  output y = x -> gru(4, reset=reset) -> dense(2)
}
"""


def test_gru_sign_convention_and_reset_rule(tmp_path: Path) -> None:
    torch.manual_seed(2)
    gru, fc = torch.nn.GRU(3, 4), torch.nn.Linear(4, 2)
    state = {**{f"rnn.{k}": v.numpy() for k, v in gru.state_dict().items()},
             **{f"head.{k}": v.detach().numpy() for k, v in fc.state_dict().items()}}
    (graph,) = netc.check_file("g.net", source=GRU_NET)
    result = import_state_dict(state, graph)
    assert not result.unfilled and not result.unmatched_torch
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    with torch.no_grad():
        want = fc(gru(torch.from_numpy(x))[0]).numpy()
    np.savez(tmp_path / "w.npz", **result.weights)
    compiled = netc.compile_file("g.net", source=GRU_NET, weights=tmp_path / "w.npz")
    np.testing.assert_allclose(netc.run(compiled, {"x": x})["y"], want, rtol=1e-4, atol=1e-5)
    (before,) = netc.check_file("g.net", source=GRU_NET, settings={"reset": "before"})
    result = import_state_dict(state, before)
    assert result.unfilled == ["gru0"] and 'reset="after"' in result.reasons["gru0"]


DENSE_NET = """network D {
  input x: f32[N, 3]
  output y = x -> dense(3) -> relu -> dense(2)
}
"""


def test_transposed_dense_weight_says_transpose(tmp_path: Path) -> None:
    (graph,) = netc.check_file("d.net", source=DENSE_NET)
    state = {"a.weight": np.zeros((3, 3), np.float32), "a.bias": np.zeros(3, np.float32),
             "b.weight": np.zeros((3, 2), np.float32), "b.bias": np.zeros(2, np.float32)}  # [in, out]: wrong
    result = import_state_dict(state, graph)
    assert result.unfilled == ["dense1"]
    assert "a transpose of what is needed" in result.reasons["dense1"]
    assert result.unmatched_torch == ["b.weight", "b.bias"]


def test_rules_file_pairs_what_order_cannot(tmp_path: Path, capsys) -> None:
    # Two same-shaped layers whose PyTorch names sort the other way round: only a rule helps.
    net = tmp_path / "d.net"
    net.write_text("network D {\n  input x: f32[N, 3]\n  output y = x -> dense(3) -> relu -> dense(3)\n}\n")
    first, second = np.eye(3, dtype=np.float32), 2 * np.eye(3, dtype=np.float32)
    state = {"zeta.weight": first, "zeta.bias": np.zeros(3, np.float32),
             "alpha.weight": second, "alpha.bias": np.ones(3, np.float32)}
    from safetensors.numpy import save_file as save_np

    save_np(state, str(tmp_path / "s.safetensors"))
    (tmp_path / "rules.txt").write_text("# netc layer = torch module\ndense0 = zeta\ndense1 = alpha\n")
    code, out, err = _cli(capsys, "weights", "import", tmp_path / "s.safetensors", "--net", net,
                          "--map", tmp_path / "rules.txt", "-o", tmp_path / "w.npz")
    assert code == 0, err
    assert re.search(r"dense0\s+<- zeta\s+\(rule\)", out)
    with np.load(tmp_path / "w.npz") as w:
        np.testing.assert_array_equal(w["dense1.bias"], np.ones(3, np.float32))
    (tmp_path / "bad.txt").write_text("dense9 = zeta\n")
    code, _, err = _cli(capsys, "weights", "import", tmp_path / "s.safetensors", "--net", net,
                        "--map", tmp_path / "bad.txt", "-o", tmp_path / "w2.npz")
    assert code == 1 and "no layer 'dense9'" in err and not (tmp_path / "w2.npz").exists()


def test_refusals(tmp_path: Path, capsys) -> None:
    net = tmp_path / "d.net"
    net.write_text(DENSE_NET)
    (tmp_path / "model.pt").write_bytes(b"\x80\x04pickle")
    code, _, err = _cli(capsys, "weights", "import", tmp_path / "model.pt", "--net", net, "-o", tmp_path / "w.npz")
    assert code == 1 and "pickle" in err and "save_file(model.state_dict()" in err
    from safetensors.numpy import save_file as save_np

    state = {"a.weight": np.zeros((3, 3), np.float64), "a.bias": np.zeros(3, np.float64),
             "b.weight": np.zeros((2, 3), np.float64), "b.bias": np.zeros(2, np.float64),
             "extra.weight": np.zeros((5, 5), np.float32)}
    save_np(state, str(tmp_path / "s.safetensors"))
    args = ["weights", "import", tmp_path / "s.safetensors", "--net", net, "-o", tmp_path / "w.npz"]
    code, _, err = _cli(capsys, *args)
    assert code == 1 and "another dtype" in err and "--cast-weights" in err
    code, out, err = _cli(capsys, *args, "--cast-weights")
    assert code == 1 and "1 PyTorch tensor(s) were not used: extra.weight" in err
    assert "unmatched PyTorch tensors (1): extra.weight" in out and not (tmp_path / "w.npz").exists()
    code, out, _ = _cli(capsys, *args, "--cast-weights", "--allow-unmatched")
    assert code == 0 and "cast to the network's dtype" in out
    with np.load(tmp_path / "w.npz") as w:
        assert w["dense0.weight"].dtype == np.float32


def test_compile_refuses_other_float_dtypes_unless_cast(tmp_path: Path, capsys) -> None:
    net = tmp_path / "d.net"
    net.write_text(DENSE_NET)
    (graph,) = netc.check_file(net)
    for dtype in (np.float64, np.float16):
        np.savez(tmp_path / "w.npz", **{p.name: np.zeros(p.shape, dtype) for p in graph.params})
        with pytest.raises(netc.NetcError, match=f"has dtype {np.dtype(dtype).name}.*--cast-weights"):
            netc.compile_file(net, weights=tmp_path / "w.npz")
        compiled = netc.compile_file(net, weights=tmp_path / "w.npz", cast_weights=True)
        assert all(v.dtype == np.float32 for v in compiled.params.values())
        code, _, err = _cli(capsys, "compile", net, "--weights", tmp_path / "w.npz", "-o", tmp_path / "m.onnx")
        assert code == 1 and "--cast-weights" in err
        code, _, _ = _cli(capsys, "compile", net, "--weights", tmp_path / "w.npz", "-o", tmp_path / "m.onnx",
                          "--cast-weights")
        assert code == 0


def test_creation_order_is_rebuilt_from_sorted_names() -> None:
    names = ["bn1.running_mean", "bn1.running_var", "bn1.weight", "bn1.bias", "conv1.weight", "fc.weight",
             "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var", "layer1.0.conv1.weight",
             "layer10.0.conv1.weight", "layer2.0.conv1.weight", "layer2.0.downsample.0.weight"]
    state = {n: np.zeros((4, 4, 1, 1) if "conv" in n or "downsample" in n else (4,) if "bn" in n else (2, 4))
             for n in sorted(names)}
    modules, _ = group_modules(state)
    assert [m.path for m in modules] == ["conv1", "bn1", "layer1.0.conv1", "layer1.0.bn1", "layer2.0.conv1",
                                         "layer2.0.downsample.0", "layer10.0.conv1", "fc"]


def test_weights_option_says_transpose(tmp_path: Path) -> None:
    net = tmp_path / "d.net"
    net.write_text(DENSE_NET)
    (graph,) = netc.check_file(net)
    arrays = {p.name: np.zeros(p.shape[::-1], np.float32) for p in graph.params}
    np.savez(tmp_path / "w.npz", **arrays)
    with pytest.raises(netc.NetcError, match=r"has shape \[2, 3\], the network expects \[3, 2\] \(the transpose"):
        netc.compile_file(net, weights=tmp_path / "w.npz")


def test_transformer_encoder_from_pytorch_matches(tmp_path: Path, capsys) -> None:
    """nn.TransformerEncoder (2 post-norm layers) onto std/transformer.net's `encoder` through
    `netc weights import`, no rules file: attention (its out_proj child folded in), the
    feed-forward Linears (transposed) and the LayerNorms; outputs equal PyTorch's."""
    torch.manual_seed(3)
    E, H, FF, T, N = 16, 4, 32, 6, 3
    layer = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0)
    stack = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    with torch.no_grad():
        for name, p in stack.named_parameters():
            if "norm" in name or "bias" in name:
                p.normal_(std=0.5)
    save_file(stack.state_dict(), str(tmp_path / "encoder.safetensors"))
    net = tmp_path / "encoder.net"
    net.write_text(f'import "std/transformer.net"\nnetwork Enc {{\n  input x: f32[T, N, {E}]\n'
                   f"  output y = encoder(x, 2, {H}, {FF})\n}}\n")
    code, out, err = _cli(capsys, "weights", "import", tmp_path / "encoder.safetensors", "--net", net,
                          "-o", tmp_path / "w.npz")
    assert code == 0, err
    assert "unmatched" not in out and "without weights" not in out
    x = np.random.default_rng(4).standard_normal((T, N, E)).astype(np.float32)
    with torch.inference_mode():
        want = stack(torch.from_numpy(x)).numpy()
    got = netc.run(netc.compile_file(net, weights=tmp_path / "w.npz"), {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_module_named_like_the_layer_comes_first() -> None:
    # An order rebuilt from sorted names puts `multihead_attn` before `self_attn`; both fit
    # either attention layer, so the names decide (nn.TransformerDecoderLayer's state dict).
    layer = torch.nn.TransformerDecoderLayer(16, 2, 32)
    source = ('import "std/transformer.net"\nnetwork Dec {\n  input x: f32[T, N, 16]\n'
              '  input mem: f32[S, N, 16]\n  output y = decoder_layer(x, mem, 2, 32, name="dec")\n}\n')
    graph = netc.compile_source(source).graph
    state = {k: v.numpy() for k, v in sorted(layer.state_dict().items())}  # as a safetensors file keeps it
    result = import_state_dict(state, graph)
    pairs = {p.layer: (p.module, p.how) for p in result.pairings}
    assert pairs["dec.self_attn"] == ("self_attn", "name")
    assert pairs["dec.multihead_attn"] == ("multihead_attn", "name")
    np.testing.assert_array_equal(result.weights["dec.self_attn.in_proj_weight"], state["self_attn.in_proj_weight"])
    assert not result.unfilled and not result.unmatched_torch
