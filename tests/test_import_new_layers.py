"""`netc weights import` with the layers and parameters added alongside it: transposed
convolutions (DCGAN's generator against PyTorch), free `param` declarations and a tied
embedding (the tied LM against PyTorch), and the recurrent activations PyTorch lacks."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

import netc
from netc.cli import main
from netc.compiler.torch_import import import_state_dict
from tests.conftest import randomise_batchnorm

torch = pytest.importorskip("torch")
from safetensors.numpy import save_file  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class TiedLM(torch.nn.Module):
    """examples/tied_embedding_lm.net in PyTorch: the decoder's weight is the embedding's."""

    def __init__(self, V: int, dim: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(V, dim)
        self.lstm = torch.nn.LSTM(dim, dim)
        self.decoder = torch.nn.Linear(dim, V)
        self.decoder.weight = self.embedding.weight

    def forward(self, words):
        h, _ = self.lstm(self.embedding(words))
        return self.decoder(h)


def test_tied_lm_imports_its_free_bias_and_reports_the_tied_copy(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    V, dim = 40, 8
    module = TiedLM(V, dim).eval()
    with torch.no_grad():
        module.decoder.bias.normal_()
    # Both names of the tied table are in the state dict, as `model.state_dict()` gives them.
    state = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    save_file(state, str(tmp_path / "lm.safetensors"))
    code = main(["weights", "import", str(tmp_path / "lm.safetensors"), "--net",
                 str(EXAMPLES / "tied_embedding_lm.net"), "--set", f"V={V}", "--set", f"dim={dim}",
                 "-o", str(tmp_path / "w.npz")])
    out, err = capsys.readouterr()
    assert code == 0, err
    pairs = dict(re.findall(r"^\s+(\S+)\s+<- (\S+)", out, re.M))
    assert pairs == {"embed0": "embedding", "lstm0": "lstm", "bias": "decoder"}
    assert "tied copies, not needed (1): decoder.weight (= embedding.weight)" in out
    compiled = netc.compile_file(EXAMPLES / "tied_embedding_lm.net", weights=tmp_path / "w.npz", V=V, dim=dim)
    words = np.random.default_rng(0).integers(0, V, (6, 3)).astype(np.int64)
    with torch.no_grad():
        want = module(torch.from_numpy(words)).numpy()
    np.testing.assert_allclose(netc.run(compiled, {"words": words})["logits"], want, rtol=1e-4, atol=1e-5)


def test_dcgan_generator_from_pytorch_matches(tmp_path: Path) -> None:
    torch.manual_seed(2)
    nz, g, c = 6, 4, 3
    layers: list = []
    widths = [nz, 8 * g, 4 * g, 2 * g, g]
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers += [torch.nn.ConvTranspose2d(a, b, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False),
                   torch.nn.BatchNorm2d(b), torch.nn.ReLU()]
    layers += [torch.nn.ConvTranspose2d(g, c, 4, 2, 1, bias=False), torch.nn.Tanh()]
    module = torch.nn.Sequential(*layers).eval()
    randomise_batchnorm(module)
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    settings = {"nz": nz, "g": g, "channels": c}
    (graph,) = netc.check_file(EXAMPLES / "dcgan_generator.net", **settings)
    result = import_state_dict(state, graph)
    assert not result.unfilled and not result.unmatched_torch
    assert [p.layer for p in result.pairings][:2] == ["conv_transpose2d0", "batchnorm0"]
    np.savez(tmp_path / "w.npz", **result.weights)
    compiled = netc.compile_file(EXAMPLES / "dcgan_generator.net", weights=tmp_path / "w.npz", **settings)
    z = np.random.default_rng(1).standard_normal((2, nz)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(z).reshape(2, nz, 1, 1)).numpy()
    np.testing.assert_allclose(netc.run(compiled, {"z": z})["image"], want, rtol=1e-4, atol=1e-5)


RNN_NET = """network R {
  input x: f32[T, N, 3]
  param scale: f32[4] = ones
  output y = (x -> rnn(4, act=sigmoid)) * scale
}
"""


def test_refusals_name_the_activation_and_the_free_parameter() -> None:
    (graph,) = netc.check_file("r.net", source=RNN_NET)
    rnn = torch.nn.RNN(3, 4)
    state = {f"rnn.{k}": v.detach().numpy() for k, v in rnn.state_dict().items()}
    state["head.weight"] = np.arange(10, dtype=np.float32).reshape(2, 5)
    result = import_state_dict(state, graph)
    assert sorted(result.unfilled) == ["rnn0", "scale"]
    assert "act=sigmoid; PyTorch's RNN computes only tanh or relu" in result.reasons["rnn0"]
    assert "single tensor of shape [4] for scale" in result.reasons["scale"]
    assert sorted(result.unmatched_torch) == sorted(["head.weight", *(f"rnn.{k}" for k in rnn.state_dict())])


def test_a_constant_leftover_is_not_a_tied_copy() -> None:
    (graph,) = netc.check_file("d.net", source="network D {\n  input x: f32[N, 3]\n"
                                                "  output y = x -> dense(2)\n}\n")
    state = {"a.weight": np.ones((2, 3), np.float32), "a.bias": np.zeros(2, np.float32),
             "b.bias": np.zeros(2, np.float32), "c.weight": np.ones((2, 3), np.float32) * [[1], [2]]}
    result = import_state_dict(state, graph)
    assert result.tied == {} and sorted(result.unmatched_torch) == ["b.bias", "c.weight"]
