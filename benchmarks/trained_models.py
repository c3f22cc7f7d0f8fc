"""Trained weights for `examples/bilstm_tagger.net` and `examples/mnist_mlp.net`, for
measuring int8 agreement on models that have learnt something (a random-weight
classifier's scores are near ties).

    python benchmarks/trained_models.py --model bilstm_tagger -o tagger.npz [--steps 300]
    python benchmarks/trained_models.py --model mnist_mlp -o mlp.npz [--steps 300]

Both tasks are synthetic (nothing is downloaded), seeded, and trained with PyTorch (Adam),
in modules of the example's shapes; `netc weights import` converts the state dict into
netc's parameter names.

- Tagger (`Tagging`), shaped like part-of-speech tagging: words drawn uniformly from the
  5,000-word vocabulary (the benchmark's random inputs); each word has a tag of its own,
  and 30% of the words are ambiguous: they take a second tag when the previous word's tag
  is in the lower half of the tag set, so the tagger must read its context. 300 steps of
  32 sequences of 50 words reach 85-87% accuracy.
- MLP (`Digits`), shaped like MNIST: 28 x 28 images of 8-bit pixels in [0, 1]; each of 10
  classes is a figure of 3 random strokes, drawn at a random intensity and shift (up to 3
  pixels), with a stray stroke and pixel noise. 300 steps of 64 images reach about 97%.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
V, DIM, HIDDEN, LABELS = 5000, 100, 128, 45


class Tagging:
    """The synthetic tagging rule (seeded)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.tag = rng.integers(0, LABELS, V)
        self.other = rng.integers(0, LABELS, V)
        self.ambiguous = rng.random(V) < 0.3

    def sample(self, rng: np.random.Generator, n: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Words [50, n] and their tags: a word's own tag, or its other tag when it is
        ambiguous and the previous word's tag is below LABELS // 2."""
        words = rng.integers(0, V, (50, n))
        prev = np.vstack([words[:1], words[:-1]])
        alt = self.ambiguous[words] & (self.tag[prev] < LABELS // 2)
        alt[0] = False
        return words, np.where(alt, self.other[words], self.tag[words])


def _strokes(rng: np.random.Generator, count: int) -> np.ndarray:
    """A 28 x 28 image of `count` straight strokes, 3 pixels wide, between random points."""
    img = np.zeros((28, 28))
    pen = np.array([[0.5, 0.8, 0.5], [0.8, 1.0, 0.8], [0.5, 0.8, 0.5]])
    for _ in range(count):
        a, b = rng.uniform(5, 23, 2), rng.uniform(5, 23, 2)
        for t in np.linspace(0, 1, 40):
            y, x = (a + (b - a) * t).round().astype(int)
            img[y - 1:y + 2, x - 1:x + 2] = np.maximum(img[y - 1:y + 2, x - 1:x + 2], pen)
    return img


class Digits:
    """MNIST-like synthetic figures (seeded)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.figures = np.stack([_strokes(rng, 3) for _ in range(10)])
        self.strays = np.stack([_strokes(rng, 1) for _ in range(500)])

    def sample(self, rng: np.random.Generator, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Images [n, 784] (8-bit values in [0, 1]) and their classes."""
        labels = rng.integers(0, 10, n)
        images = np.empty((n, 28, 28))
        for i, c in enumerate(labels):
            figure = np.roll(self.figures[c] * rng.uniform(0.6, 1.0), tuple(rng.integers(-3, 4, 2)), (0, 1))
            images[i] = np.maximum(figure, self.strays[rng.integers(len(self.strays))] * rng.uniform(0, 1))
        images = np.clip(images + rng.normal(0, 0.15, images.shape), 0, 1)
        return (np.round(images * 255) / 255).reshape(n, 784).astype(np.float32), labels


def train(model: str, steps: int, seed: int = 0):
    """The trained PyTorch module and its accuracy on held-out samples (1,600 words or
    2,000 images)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    if model == "bilstm_tagger":
        task: Tagging | Digits = Tagging(seed)

        class Tagger(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed = torch.nn.Embedding(V, DIM)
                self.lstm = torch.nn.LSTM(DIM, HIDDEN, 2, bidirectional=True)
                self.out = torch.nn.Linear(2 * HIDDEN, LABELS)

            def forward(self, words):
                return self.out(self.lstm(self.embed(words))[0])

        net, lr, classes = Tagger(), 3e-3, LABELS
    else:
        task = Digits(seed)
        net = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 500),
                                  torch.nn.ReLU(), torch.nn.Linear(500, 10))
        lr, classes = 1e-3, 10
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        x, y = task.sample(rng)
        loss = torch.nn.functional.cross_entropy(net(torch.tensor(x)).reshape(-1, classes), torch.tensor(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = task.sample(np.random.default_rng(seed + 2), 32 if model == "bilstm_tagger" else 2000)
    with torch.no_grad():
        accuracy = float((net(torch.tensor(x)).argmax(-1).numpy() == y).mean())
    return net, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("bilstm_tagger", "mnist_mlp"), required=True)
    parser.add_argument("-o", "--output", required=True, help="the netc weight file (.npz) to write")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    net, accuracy = train(args.model, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp, "model.safetensors")
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(state))
        subprocess.run([sys.executable, "-m", "netc", "weights", "import", str(state), "--net",
                        str(ROOT / "examples" / f"{args.model}.net"), "-o", args.output],
                       check=True, stdout=subprocess.DEVNULL)
    print(f"accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
