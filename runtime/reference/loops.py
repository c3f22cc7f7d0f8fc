"""Reference semantics of recurrences over step blocks: plain Python loops over the steps,
each running the step's region through the interpreter (not the ONNX Scan/Loop forms)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import Op
from netc.runtime.reference.interpreter import generator_for, run_region
from netc.runtime.reference.random import categorical_sample
from netc.runtime.reference.registry import ref


def _split(op: Op, args: list) -> tuple[list, dict[int, np.ndarray]]:
    """The op's own input arrays, and its captured values by id for the region."""
    n = op.attrs.get("captures", 0)
    own = args[:len(args) - n]
    captured = {id(v): a for v, a in zip(op.inputs[len(args) - n:], args[len(args) - n:])}
    return own, captured


@ref("diag")
def diag(x, weight):
    return x * weight


@ref("recur", regions=True)
def recur(op: Op, args: list, attrs: dict, env: Mapping[str, int]):
    """state_t = step(state_{t-1}, x_t); outputs stacked so that out[t] belongs to x_t, also
    when the steps run from the last to the first (reverse)."""
    k, m = attrs["n_state"], attrs["n_seqs"]
    own, captured = _split(op, args)
    state, seqs = list(own[:k]), own[k:k + m]
    (body,) = op.regions
    steps = seqs[0].shape[0]
    ys: list[list[np.ndarray]] = [[] for _ in range(steps)]
    order = range(steps - 1, -1, -1) if attrs["reverse"] else range(steps)
    for t in order:
        outs = run_region(body, state + [s[t] for s in seqs], captured, env)
        state, ys[t] = outs[:k], outs[k:]
    stacked = []
    for j, y in enumerate(list(body.outputs.values())[k:]):
        if steps:
            stacked.append(np.stack([ys[t][j] for t in range(steps)]))
        else:
            shape = [D.evaluate(d, env) for d in y.type.shape]
            stacked.append(np.empty((0, *shape), dtype=y.type.dtype.numpy))
    return tuple(state + stacked)


@ref("generate", regions=True)
def generate(op: Op, args: list, attrs: dict, env: Mapping[str, int]):
    """Greedy decoding: each step's argmax feeds the next step; a sequence that has emitted
    `stop` emits `stop` from then on; the loop ends when all have, or after max_len steps."""
    k, stop = attrs["n_state"], attrs["stop"]
    own, captured = _split(op, args)
    if attrs.get("beam", 1) > 1:
        from netc.runtime.reference.beam import beam_search

        return beam_search(op, own, captured, attrs, env)
    state, prev = list(own[:k]), own[k]
    (body,) = op.regions
    done = np.zeros(prev.shape, dtype=bool)
    emitted = []
    for _ in range(attrs["max_len"]):
        outs = run_region(body, [*state, prev], captured, env)
        state, logits = outs[:k], outs[k]
        ids = _next_ids(op, logits, attrs)
        if stop is not None:
            ids = np.where(done, np.int64(stop), ids)
            done = done | (ids == stop)
        emitted.append(ids)
        prev = ids
        if stop is not None and done.all():
            break
    return np.stack(emitted)


def _next_ids(op: Op, logits: np.ndarray, attrs: dict) -> np.ndarray:
    """argmax, or a draw from softmax(logits / temperature) over the top_k largest logits."""
    if not attrs.get("sample"):
        return np.argmax(logits, axis=-1).astype(np.int64)
    rng = generator_for(op)
    top_k = attrs["top_k"]
    if top_k is None:
        return categorical_sample(logits, attrs["temperature"], rng)
    candidates = np.argsort(-logits, axis=-1, kind="stable")[:, :top_k]
    picked = categorical_sample(np.take_along_axis(logits, candidates, axis=-1), attrs["temperature"], rng)
    return np.take_along_axis(candidates, picked[:, None], axis=-1)[:, 0]


@ref("recurse", regions=True)
def recurse(op: Op, args: list, attrs: dict, env: Mapping[str, int]):
    """Bottom-up over the node table: node i's children are the indices in [0, i) of row i
    of `children` (anything else means no child, whose state is zeros); a node with no child
    keeps its row of leaves, any other gets compose(left, right)."""
    k = attrs["n_state"]
    own, captured = _split(op, args)
    leaves, children = own[:k], own[k]
    (body,) = op.regions
    states = [np.array(leaf, copy=True) for leaf in leaves]
    for i in range(children.shape[0]):
        picked = []
        for c in children[i]:
            if 0 <= c < i:
                picked.append([s[c] for s in states])
            else:
                picked.append(None)
        if picked[0] is None and picked[1] is None:
            continue
        zeros = [np.zeros_like(s[i]) for s in states]
        left, right = (p if p is not None else zeros for p in picked)
        for s, new in zip(states, run_region(body, [*left, *right], captured, env)):
            s[i] = new
    return tuple(states)
