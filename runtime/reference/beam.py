"""Reference beam search for `generate(beam=k)` (compiler/beam.py states the semantics):
explicit hypotheses per example in Python lists, the step block run once per hypothesis
slot on the states of that slot of every example, log-probabilities in float64."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from netc.compiler.ir import Op
from netc.runtime.reference.interpreter import run_region


@dataclass
class Hypothesis:
    score: float
    tokens: list[int] = field(default_factory=list)
    finished: bool = False
    length: int = 0  # tokens up to and including stop


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    shifted = x - x.max()
    return shifted - math.log(np.exp(shifted).sum())


def _take(array: np.ndarray, axis: int, n: int) -> np.ndarray:
    return np.take(array, n, axis=axis)


def beam_search(op: Op, own: list, captured: Mapping[int, np.ndarray], attrs: dict, env: Mapping[str, int]):
    k, beam, stop, alpha = attrs["n_state"], attrs["beam"], attrs["stop"], attrs["length_penalty"]
    axes = attrs["batch_axes"]
    (body,) = op.regions
    init, start = list(own[:k]), own[k]
    N = start.shape[0]
    hyps = [[Hypothesis(0.0 if b == 0 else -math.inf) for b in range(beam)] for _ in range(N)]
    states = [[s.copy() for s in init] for _ in range(beam)]  # per slot: the states of every example
    prev = [start.copy() for _ in range(beam)]
    for _ in range(attrs["max_len"]):
        outs = [run_region(body, [*states[b], prev[b]], captured, env) for b in range(beam)]
        next_states = [o[:k] for o in outs]
        new_states = [[s.copy() for s in next_states[0]] for _ in range(beam)]
        new_prev = [np.zeros(N, np.int64) for _ in range(beam)]
        for n in range(N):
            candidates = []  # (score, flat index, slot, token)
            for b, h in enumerate(hyps[n]):
                logp = _log_softmax(outs[b][k][n])
                V = logp.shape[0]
                for v in range(V):
                    if h.finished:
                        lp = 0.0 if v == stop else -math.inf
                    else:
                        lp = float(logp[v])
                    candidates.append((h.score + lp, b * V + v, b, v))
            candidates.sort(key=lambda c: (-c[0], c[1]))  # best first; ties: the lower index
            chosen = []
            for score, _, b, v in candidates[:beam]:
                old = hyps[n][b]
                ended = old.finished or (stop is not None and v == stop)
                chosen.append(Hypothesis(score, [*old.tokens, v], ended, old.length + (0 if old.finished else 1)))
                slot = len(chosen) - 1
                for i, axis in enumerate(axes):  # the state of example n in the new slot
                    index = [slice(None)] * new_states[slot][i].ndim
                    index[axis] = n
                    new_states[slot][i][tuple(index)] = _take(next_states[b][i], axis, n)
                new_prev[slot][n] = v
            hyps[n] = chosen
        states, prev = new_states, new_prev
        if stop is not None and all(h.finished for row in hyps for h in row):
            break
    best = []
    for row in hyps:
        def final(h: Hypothesis) -> float:
            return h.score / (((5 + h.length) / 6) ** alpha) if alpha > 0 else h.score

        scores = [final(h) for h in row]
        best.append(row[int(np.argmax(scores))].tokens)
    return np.array(best, dtype=np.int64).T
