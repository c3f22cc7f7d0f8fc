"""Every example network: parsed, checked, compiled, fully checked by the ONNX checker and
strict shape inference, and run on onnxruntime against the NumPy reference. Published
parameter counts are checked without generating weights, and the ResNets are compared
output for output with PyTorch modules written after torchvision (when torch is present).

New files in examples/ are picked up automatically; a file that needs other settings or
inputs gets an entry in OVERRIDES.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import netc
from netc.runtime.stochastic import random_values
from netc.runtime.verify import format_report, verify
from tests.conftest import (
    EXAMPLES,
    assert_close,
    check_onnx,
    random_inputs,
    randomise_batchnorm,
    run_both,
    torch_models,
)

# Per-file overrides, keyed by the path under examples/:
#   settings  network parameters (as `--set`), applied to every network of the file
#   sizes     values of symbolic dims for the random inputs (default: 2..4 each)
#   int_high  integer inputs (word ids) are drawn from [0, int_high)
#   tolerance (rtol, atol) for float outputs, instead of the per-dtype default
#   slow      mark the case slow
# The big image networks run at a small resolution: their parameter counts do not depend on it.
OVERRIDES: dict[str, dict[str, Any]] = {
    "resnet18.net": {"settings": {"size": 64, "classes": 10}, "sizes": {"N": 2}},
    "resnet50.net": {"settings": {"size": 64, "classes": 10}, "sizes": {"N": 1}},
    "resnet152.net": {"settings": {"size": 32, "classes": 10}, "sizes": {"N": 1}, "slow": True},
    "vgg16.net": {"settings": {"size": 32, "classes": 10}, "sizes": {"N": 1}, "slow": True},
    "nplm.net": {"settings": {"V": 1000}, "int_high": 1000},
    "bag_of_embeddings.net": {"settings": {"V": 500}, "int_high": 500, "sizes": {"T": 7}},
    "wavenet_stack.net": {"sizes": {"T": 40}},
    "spatial_transformer.net": {"sizes": {"N": 2, "H": 28, "W": 28}},
    "unet1d.net": {"sizes": {"T": 13}},
    "alexnet_lrn.net": {"settings": {"size": 67, "classes": 10}, "sizes": {"N": 1}},
    "transformer_encoder.net": {"settings": {"layers": 2, "d_model": 32, "heads": 4, "d_ff": 64, "vocab": 50},
                                "int_high": 50},
    # lengths are drawn from [0, int_high): T = 4 keeps them within the sequences
    "vqa_spatial_attention.net": {"sizes": {"T": 4}},
    "seq2seq_scores.net": {"sizes": {"T": 4}},
    "bahdanau_translator.net": {"sizes": {"T": 4}},
}

# Trainable parameters (batchnorm running statistics excluded) at the default settings.
PARAMETER_COUNTS = {
    "resnet18.net": 11_689_512,  # torchvision resnet18
    "resnet50.net": 25_557_032,  # torchvision resnet50
    "resnet152.net": 60_192_808,  # torchvision resnet152
    "vgg16.net": 138_357_544,  # torchvision vgg16
    "mnist_mlp.net": 648_010,  # 784*500+500 + 500*500+500 + 500*10+10
    "seed_cnn.net": 137_660,  # 25*9+25 + 50*25*9+50 + 1250*100+100 + 100*10+10
    "lenet5.net": 61_706,  # 156 + 2,416 + 48,120 + 10,164 + 850
    "seed_sigmoid.net": 18,  # three 2x2 layers with biases
    # shared and free parameters, each counted once
    "tied_embedding_lm.net": 3_096_336,  # E 10000x256 (also the output projection) + LSTM 526,336 + b 10,000
    "siamese_towers.net": 41_344,  # one tower for both inputs
    "siamese_towers.net:MaLSTM": 23_200,  # one LSTM for both sentences
    "memory_network.net": 16_000,  # 4 adjacent-tied tables of 200x20 for 3 hops
    "word_analogy.net": 250_000,  # the table only
    "bidaf_attention.net": 600,  # the free vector w of 3 x 200
    "vae_decoder.net": 652_824,
    "stochastic_binary_units.net": 178_110,
    "gumbel_sampling.net": 170,  # network VAE: encoder 330,040 + decoder 322,784 (used twice)
    "alexnet_lrn.net": 60_965_224,  # Caffe's bvlc_alexnet (2 channel groups in conv2, conv4, conv5)
    "dcgan_generator.net": 3_576_704,  # the PyTorch DCGAN tutorial's generator (nz=100, ngf=64)
}

_NETWORK = re.compile(r"^\s*network\s+[A-Za-z_]", re.M)


def _example_files() -> list[Path]:
    """Every .net under examples/ that defines a network (imported block libraries do not)."""
    return sorted(p for p in EXAMPLES.rglob("*.net") if _NETWORK.search(p.read_text()))


def _key(path: Path) -> str:
    return path.relative_to(EXAMPLES).as_posix()


def _cases() -> list:
    return [pytest.param(p, id=_key(p), marks=[pytest.mark.slow] if OVERRIDES.get(_key(p), {}).get("slow") else [])
            for p in _example_files()]


def test_examples_exist():
    assert len(_example_files()) >= 14
    assert set(OVERRIDES) <= {_key(p) for p in _example_files()}, "an override names a missing example"


@pytest.mark.parametrize("path", _cases())
def test_example(path: Path):
    opts = OVERRIDES.get(_key(path), {})
    settings = opts.get("settings", {})
    graphs = netc.check_file(path, settings=settings)
    assert graphs, f"{path} defines no network"
    for graph in graphs:
        compiled = netc.compile_file(path, network=graph.name, settings=settings, seed=0)
        check_onnx(compiled.model)
        if random_values(compiled.graph):  # draws: checked statistically, results by structure
            report = verify(compiled.graph, compiled.params, compiled.model, seeds=(0,), sizes=opts.get("sizes"),
                            check_model=False)
            assert report.ok and report.draws, format_report(report)
            continue
        inputs = random_inputs(compiled.graph, seed=0, int_high=opts.get("int_high", 5), sizes=opts.get("sizes"))
        got, want = run_both(compiled, inputs)
        assert set(got) == set(compiled.graph.outputs), graph.name
        for name, expected in want.items():
            dtype = compiled.graph.outputs[name].type.dtype.value
            if "tolerance" in opts and np.issubdtype(expected.dtype, np.floating):
                rtol, atol = opts["tolerance"]
                np.testing.assert_allclose(got[name], expected, rtol=rtol, atol=atol, err_msg=f"{graph.name}.{name}")
            else:
                assert_close({name: got[name]}, {name: expected}, dtype, f"{_key(path)} {graph.name}")
            if np.issubdtype(expected.dtype, np.floating):
                assert np.isfinite(expected).all(), f"{graph.name}.{name}: non-finite reference values"


@pytest.mark.parametrize(("name", "count"), sorted(PARAMETER_COUNTS.items()))
def test_parameter_count(name: str, count: int):
    file, _, network = name.partition(":")  # "file.net:Network", or the file's first network
    graphs = netc.check_file(EXAMPLES / file)
    graph = next(g for g in graphs if g.name == network) if network else graphs[0]
    assert sum(p.size for p in graph.params if p.trainable) == count


def test_resnet_parameter_count_is_independent_of_size():
    for name in ("resnet18.net", "resnet50.net", "resnet152.net"):
        (graph,) = netc.check_file(EXAMPLES / name, settings={"size": 96})
        assert sum(p.size for p in graph.params if p.trainable) == PARAMETER_COUNTS[name]


@pytest.mark.parametrize(("example", "model", "settings", "shape"), [
    ("resnet18.net", "resnet18", {"size": 64}, (2, 3, 64, 64)),
    ("resnet50.net", "resnet50", {"size": 64}, (1, 3, 64, 64)),
    ("mnist_mlp.net", "mnist_mlp", {}, (3, 784)),
])
def test_matches_pytorch(example: str, model: str, settings: dict, shape: tuple, tmp_path: Path):
    """The same weights in netc's model and in a torchvision-style PyTorch module give the
    same outputs: an external check of layer order, padding, strides and shortcuts."""
    tm = torch_models()
    import torch

    (graph,) = netc.check_file(EXAMPLES / example, settings=settings)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    module = tm.MODELS[model]()
    assert tm.trainable_count(module) == PARAMETER_COUNTS[example]
    # torch's own initialisation, plus non-trivial batchnorm statistics and affine terms,
    # so that a swapped mean/variance or scale/bias would show.
    randomise_batchnorm(module)
    module.eval()
    weights = tm.netc_params(module, graph)
    np.savez(tmp_path / "weights.npz", **weights)
    compiled = netc.compile_file(EXAMPLES / example, settings=settings, weights=tmp_path / "weights.npz")
    x = rng.standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(compiled.model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {graph.inputs[0].name: x})
    # float32 sums in another order over dozens of layers: compare relative to the output's scale
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * max(scale, 1.0))
