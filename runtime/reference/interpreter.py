"""Executes an IR graph op by op with the NumPy references."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import numpy as np

from netc.compiler import dims as D
from netc.compiler.ir import Graph, Value
from netc.dsl.errors import NetcInputError
from netc.runtime.reference.registry import REFERENCE


def bind_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Check `inputs` against the graph's declared inputs; returns the symbolic-dim values."""
    names = [v.name for v in graph.inputs]
    if not isinstance(inputs, Mapping):
        raise NetcInputError(f"inputs must map input names to NumPy arrays; got {type(inputs).__name__}", None,
                             ["inputs: " + ", ".join(names)])
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise NetcInputError(f"network '{graph.name}' has no input named '{unknown[0]}'", None,
                             ["inputs: " + ", ".join(names)])
    env: dict[str, int] = {}
    for v in graph.inputs:
        if v.name not in inputs:
            raise NetcInputError(f"missing input '{v.name}' ({v.type})")
        array = inputs[v.name]
        if not isinstance(array, np.ndarray):
            raise NetcInputError(f"input '{v.name}' must be a NumPy array; got {type(array).__name__}", None,
                                 [f"numpy.asarray(value, dtype=numpy.{v.type.dtype.numpy})"])
        if array.dtype != v.type.dtype.numpy:
            raise NetcInputError(f"input '{v.name}' has dtype {array.dtype}; the network expects {v.type}")
        if array.ndim != v.type.rank:
            raise NetcInputError(f"input '{v.name}' has shape {list(array.shape)}; the network expects {v.type}")
        for axis, (d, n) in enumerate(zip(v.type.shape, array.shape)):
            if isinstance(d, int):
                if d != n:
                    raise NetcInputError(f"input '{v.name}' has shape {list(array.shape)}; "
                                         f"the network expects {v.type} (axis {axis})")
                continue
            if isinstance(d, D.Sym) and len(d.terms) == 1 and d.terms[0] == ((d.terms[0][0][0],), 1) \
                    and isinstance(d.terms[0][0][0], str):
                sym = d.terms[0][0][0]
                if sym in env and env[sym] != n:
                    raise NetcInputError(f"input '{v.name}' axis {axis} is {n}, but {sym} = {env[sym]} "
                                         "from an earlier input")
                env[sym] = n
    for v in graph.inputs:  # composite dims (2*T) must agree with the symbols' values
        for axis, d in enumerate(v.type.shape):
            if isinstance(d, D.Sym):
                try:
                    want = D.evaluate(d, env)
                except KeyError:
                    continue
                if want != inputs[v.name].shape[axis]:
                    raise NetcInputError(f"input '{v.name}' axis {axis} is {inputs[v.name].shape[axis]}; "
                                         f"expected {d} = {want}")
    return env


def _resolve(attr: Any, env: Mapping[str, int]) -> Any:
    if isinstance(attr, D.Sym):
        return D.evaluate(attr, env)
    if isinstance(attr, tuple):
        return tuple(_resolve(a, env) for a in attr)
    return attr


# The generators of the random ops during one run_graph, by id(op): an op in a recurrence's
# step draws anew at every step, and a new run starts again from each op's seed.
_GENERATORS: ContextVar[dict[int, np.random.Generator] | None] = ContextVar("generators", default=None)


def generator_for(op) -> np.random.Generator:
    """The NumPy generator of random op `op` in the current run, seeded by its stream."""
    generators = _GENERATORS.get()
    if generators is None:  # outside run_graph: a generator for this call alone
        return np.random.default_rng(op.attrs["seed"])
    if id(op) not in generators:
        generators[id(op)] = np.random.default_rng(op.attrs["seed"])
    return generators[id(op)]


def run_graph(graph: Graph, params: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray],
              record: dict[int, np.ndarray] | None = None,
              on_op: Callable[[Any], None] | None = None) -> dict[str, np.ndarray]:
    """Run `graph`; with `record`, also keep every intermediate array by `id(value)`;
    `on_op(op)` is called after each top-level op (progress)."""
    token = _GENERATORS.set({})
    try:
        return _run_graph(graph, params, inputs, record, on_op)
    finally:
        _GENERATORS.reset(token)


def _run_graph(graph: Graph, params: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray],
               record: dict[int, np.ndarray] | None,
               on_op: Callable[[Any], None] | None) -> dict[str, np.ndarray]:
    env = bind_inputs(graph, inputs)
    values: dict[int, np.ndarray] = {}
    for v in graph.inputs:
        values[id(v)] = inputs[v.name]
    if record is not None:
        for name, v in graph.param_values.items():
            values[id(v)] = params[name]
        run_ops(graph.ops, values, env, on_op)
        record.update(values)
        return {name: values[id(v)] for name, v in graph.outputs.items()}
    # Without `record`, a parameter is looked up just before the first op that reads it, and
    # it and every intermediate are dropped after the last op that reads them, so the peak
    # is the live activations and weights, not all of them (`params` may read each weight
    # from a file when asked). A region op lists what its body reads among its inputs, so
    # top-level uses are complete.
    first, release = _first_and_last_uses(graph)
    names = {id(v): name for name, v in graph.param_values.items()}
    acquire = {i: [(key, names[key]) for key in keys if key in names] for i, keys in first.items()}
    run_ops(graph.ops, values, env, on_op, release, acquire, params)
    return {name: values[id(v)] if id(v) in values else params[names[id(v)]]  # an output that is a parameter
            for name, v in graph.outputs.items()}


def _first_and_last_uses(graph: Graph) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Op index -> ids of the values that op is the first to read; op index -> ids of the
    op results and parameters whose last reader is that op (graph outputs are kept)."""
    keep = {id(v) for v in graph.outputs.values()}
    params = {id(v) for v in graph.param_values.values()}
    first: dict[int, list[int]] = {}
    last: dict[int, int] = {}
    produced: set[int] = set()
    for i, op in enumerate(graph.ops):
        for v in op.inputs:
            if v is not None:
                if id(v) not in last:
                    first.setdefault(i, []).append(id(v))
                last[id(v)] = i
        produced.update(id(v) for v in op.outputs)
    release: dict[int, list[int]] = {}
    for key, i in last.items():
        if (key in produced or key in params) and key not in keep:
            release.setdefault(i, []).append(key)
    return first, release


def run_region(region: Graph, inputs: Sequence[np.ndarray], captured: Mapping[int, np.ndarray],
               env: Mapping[str, int]) -> list[np.ndarray]:
    """One execution of a region (a step body): `inputs` bind its inputs in order, `captured`
    holds the enclosing graphs' values it reads, by `id(value)`. Returns its outputs."""
    values: dict[int, np.ndarray] = dict(captured)
    for v, array in zip(region.inputs, inputs):
        values[id(v)] = array
    run_ops(region.ops, values, dict(env))  # dims made inside the body stay local to one run
    return [values[id(v)] for v in region.outputs.values()]


def run_ops(ops, values: dict[int, np.ndarray], env: Mapping[str, int],
            on_op: Callable[[Any], None] | None = None,
            release: Mapping[int, list[int]] | None = None,
            acquire: Mapping[int, list[tuple[int, str]]] | None = None,
            params: Mapping[str, np.ndarray] | None = None) -> None:
    """Run `ops` in order on `values`; `on_op(op)` after each (progress), the parameters
    `acquire[i]` ((id, name) pairs) taken from `params` before op `i` (their first reader),
    and the values `release[i]` dropped after op `i` (their last reader)."""
    for i, op in enumerate(ops):
        for key, name in acquire.get(i, ()) if acquire else ():
            values[key] = params[name]
        entry = REFERENCE[op.kind]
        args = [None if v is None else values[id(v)] for v in op.inputs]
        attrs = {k: _resolve(a, env) for k, a in op.attrs.items()}
        if entry.regions:
            result = entry.fn(op, args, attrs, env)
        elif entry.random:
            result = entry.fn(*args, rng=generator_for(op), **attrs)
        else:
            result = entry.fn(*args, **attrs)
        results = result if isinstance(result, tuple) else (result,)
        for value, array in zip(op.outputs, results):
            values[id(value)] = _conform(value, np.asarray(array), env, op.kind)
        del args, result, results
        for key in release.get(i, ()) if release else ():
            values.pop(key, None)
        if on_op is not None:
            on_op(op)


def _conform(value: Value, array: np.ndarray, env: Mapping[str, int], kind: str) -> np.ndarray:
    want = value.type.dtype.numpy
    if array.dtype != want:
        array = array.astype(want)
    if isinstance(env, dict):  # a dim an op creates (a generated length) takes its value here
        for d, n in zip(value.type.shape, array.shape):
            name = _plain_symbol(d)
            if name is not None and name not in env:
                env[name] = n
    expected = [D.evaluate(d, env) if not isinstance(d, int) else d for d in value.type.shape]
    if list(array.shape) != expected:
        raise RuntimeError(f"reference {kind} produced shape {list(array.shape)}, IR says {expected}")
    return array


def _plain_symbol(d: D.Dim) -> str | None:
    """The name of a dim that is a bare symbol (`N`, not `2*N`), else None."""
    if isinstance(d, D.Sym) and len(d.terms) == 1 and d.terms[0][1] == 1 and len(d.terms[0][0]) == 1 \
            and isinstance(d.terms[0][0][0], str):
        return d.terms[0][0][0]
    return None
