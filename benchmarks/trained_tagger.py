"""Trained weights for `examples/bilstm_tagger.net`, for measuring int8 agreement on a model
that has learnt something (a random-weight tagger's 45 scores are near ties).

    python benchmarks/trained_tagger.py -o tagger.npz [--steps 300]

The task is synthetic but shaped like part-of-speech tagging: words are drawn uniformly
from the 5,000-word vocabulary (the benchmark's random inputs), each word has a tag of its
own, and 30% of the words are ambiguous: they take a second tag when the previous word's
tag is in the lower half of the tag set, so the tagger must read its context. PyTorch
(`nn.Embedding`, a 2-layer bidirectional `nn.LSTM`, `nn.Linear`, the same shapes as the
example) trains on it with Adam, seeded; `netc weights import` converts the state dict
into netc's parameter names. About 300 steps reach 85-87% accuracy (the ceiling is below
100%: the first word of a sequence has no context).
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


class Task:
    """The synthetic tagging rule (seeded)."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.tag = rng.integers(0, LABELS, V)
        self.other = rng.integers(0, LABELS, V)
        self.ambiguous = rng.random(V) < 0.3

    def tags(self, words: np.ndarray) -> np.ndarray:
        """Tags of `words` [T, N]: a word's own tag, or its other tag when it is ambiguous
        and the previous word's tag is below LABELS // 2."""
        prev = np.vstack([words[:1], words[:-1]])
        alt = self.ambiguous[words] & (self.tag[prev] < LABELS // 2)
        alt[0] = False
        return np.where(alt, self.other[words], self.tag[words])


def train(steps: int, seed: int = 0):
    """The trained PyTorch tagger and its accuracy on 1,600 held-out words."""
    import torch

    torch.manual_seed(seed)
    task, rng = Task(seed), np.random.default_rng(seed + 1)

    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(V, DIM)
            self.lstm = torch.nn.LSTM(DIM, HIDDEN, 2, bidirectional=True)
            self.out = torch.nn.Linear(2 * HIDDEN, LABELS)

        def forward(self, words):
            return self.out(self.lstm(self.embed(words))[0])

    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        words = rng.integers(0, V, (50, 32))
        logits = model(torch.tensor(words))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, LABELS), torch.tensor(task.tags(words)).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    words = np.random.default_rng(seed + 2).integers(0, V, (50, 32))
    with torch.no_grad():
        accuracy = float((model(torch.tensor(words)).argmax(-1).numpy() == task.tags(words)).mean())
    return model, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="the netc weight file (.npz) to write")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    model, accuracy = train(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp, "tagger.safetensors")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(state))
        subprocess.run([sys.executable, "-m", "netc", "weights", "import", str(state), "--net",
                        str(ROOT / "examples" / "bilstm_tagger.net"), "-o", args.output],
                       check=True, stdout=subprocess.DEVNULL)
    print(f"accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
