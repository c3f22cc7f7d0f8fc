"""onnxruntime's run-time failures as netc errors that name the culprit: the input, the op
(and its source line when the model was compiled from a `.net` file here), and a hint for
the common cases (ids beyond an embedding's vocabulary, indices beyond a gathered axis, a
wrong size for a dim)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from netc.boundary import span_of, tidy_message
from netc.compiler.ir import Graph, Op
from netc.dsl.errors import NetcInputError, Span
from netc.runtime.inputs import InputSpec

_NODE = re.compile(r"running (\w+) node\. Name:'([^']*)'")
_STATUS = re.compile(r"Status Message:\s*(.*)", re.S)
_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")
_INDEX = re.compile(r"idx=(-?\d+) must be within the inclusive range \[(-?\d+),\s*(-?\d+)\]")


def _sanitise(text: str) -> str:
    """A layer label as the lowering spells it inside node names."""
    return "".join(c if c.isalnum() or c in "._" else "_" for c in text)


def op_of_node(graph: Graph | None, node_name: str) -> Op | None:
    """The IR op whose lowering made the ONNX node `node_name` (the longest label that is the
    node's name or prefixes it), or None."""
    if graph is None:
        return None
    best: tuple[int, Op] | None = None
    for op in graph.walk():
        key = _sanitise(op.label or op.kind)  # an op's first node is named so, the others `<label>_<Type>_...`
        if (node_name == key or node_name.startswith(key + "_")) and (best is None or len(key) > best[0]):
            best = (len(key), op)
    return best[1] if best else None


_INDEXING = ("gather", "take_along", "scatter")  # an index into an axis; negative counts from the end


def _indexing_op(graph: Graph | None, name: str, bound: int) -> Op | None:
    """The gather, take_along or scatter that reads input `name` as indices into an axis of
    size `bound` (these bound an input only when they read it directly)."""
    for op in graph.walk() if graph is not None else ():
        if (op.kind in _INDEXING and len(op.inputs) > 1 and op.inputs[1] is not None
                and op.inputs[1].name == name and op.inputs[1] in graph.inputs and _op_bound(op) == bound):
            return op
    return None


def out_of_range_ids(specs: Sequence[InputSpec], feeds: Mapping[str, np.ndarray],
                     graph: Graph | None = None) -> NetcInputError | None:
    """An error for the first integer input holding a value outside [0, bound) where the
    network tells the bound (an embedding's vocabulary, a one-hot depth), or outside
    [-bound, bound) for the indices of a gather, take_along or scatter."""
    for spec in specs:
        array = feeds.get(spec.name)
        if array is None or spec.dtype is None or not np.issubdtype(spec.dtype, np.integer) or not array.size:
            continue
        if spec.int_high <= 2:  # no bound known (the default draw range)
            continue
        n = spec.int_high
        indexing = _indexing_op(graph, spec.name, n)
        low, high = int(array.min()), int(array.max())
        bad = high if high >= n else low if low < (-n if indexing else 0) else None
        if bad is not None:
            where = tuple(int(i) for i in np.argwhere(array == bad)[0])
            if indexing is not None:
                error = NetcInputError(
                    f"input '{spec.name}' has index {bad} at {list(where)}, for an axis of size {n} "
                    f"(valid indices {-n}..{n - 1}, negative ones counting from the end)", None,
                    ["check how the indices were computed, or clip them into range"])
                if indexing.span is not None:
                    error.with_note(indexing.span, f"the {indexing.kind} '{indexing.label or indexing.kind}' "
                                                   "indexing with it")
                return error
            error = NetcInputError(
                f"input '{spec.name}' has id {bad} at index {list(where)}, the vocabulary is {spec.int_high} "
                f"(valid ids 0..{spec.int_high - 1})", None,
                ["map unknown words to a reserved id, or enlarge the vocabulary"])
            error.bound = spec.int_high  # which embedding (or one-hot) it is, for the note
            return error
    return None


def _op_bound(op: Op) -> int | None:
    """An embedding's vocabulary, a one-hot's depth, or the size of the axis an index reads."""
    if op.kind in _INDEXING:
        size = op.inputs[0].type.shape[op.attrs["axis"]] if op.inputs[0] is not None else None
        return size if isinstance(size, int) else None
    if op.kind == "one_hot":
        depth = op.attrs.get("depth")
        return depth if isinstance(depth, int) else None
    tables = [v.param for v in op.inputs if v is not None and v.param is not None]
    return tables[0].shape[0] if tables and tables[0].shape else None


def translate(err: BaseException, specs: Sequence[InputSpec], feeds: Mapping[str, np.ndarray],
              graph: Graph | None = None, what: str = "onnxruntime failed",
              spans: Mapping[str, Span] | None = None) -> NetcInputError:
    """A netc error for the onnxruntime exception `err`, raised running with `feeds`; `spans`
    (op label -> source) locates a node when the IR graph is not at hand."""
    ids = out_of_range_ids(specs, feeds, graph)
    if ids is not None:
        bound = getattr(ids, "bound", None)
        for op in graph.walk() if graph is not None and bound is not None else ():
            if op.kind in ("embed", "one_hot") and op.span is not None and _op_bound(op) == bound:
                ids.with_note(op.span, f"the {op.kind} '{op.label or op.kind}' reading it")
                break
        return ids
    text = _PREFIX.sub("", str(err).strip()) or type(err).__name__
    node = _NODE.search(text)
    status = _STATUS.search(text)
    detail = tidy_message((status.group(1) if status else text).strip())  # one line, no C++ source noise
    hints: list[str] = []
    span = None
    if node:
        op_type, node_name = node.groups()
        op = op_of_node(graph, node_name)
        if op is not None:
            label = op.label or op.kind
            message = f"{what} in {op.kind} '{label}' (ONNX {op_type} node '{node_name}'): {detail}"
            span = op.span
        else:
            message = f"{what} in {op_type} node '{node_name}': {detail}"
            span = span_of(node_name, dict(spans or {}))
        index = _INDEX.search(detail)
        if index and op_type == "Gather":
            feeder = _integer_inputs(specs)
            named = f"input {feeder}" if feeder else "an integer input"
            hints.append(f"{named} holds an id of {index.group(1)}; valid ids are 0..{index.group(3)}")
    else:
        message = f"{what}: {detail}"
    shapes = ", ".join(f"{name}: {a.dtype}{list(a.shape)}" for name, a in feeds.items() if hasattr(a, "shape"))
    if shapes:
        hints.append(f"inputs were {shapes}")
    symbols = list(dict.fromkeys(s for spec in specs for s in spec.symbols()))
    if symbols and "shape" in detail.lower():
        hints.append(f"if a symbolic dim ({', '.join(symbols)}) is too small for the network, give it a "
                     f"larger size with --set {symbols[-1]}=... (or use larger inputs)")
    if "division by zero" in text.lower():
        hints.append("an integer input used as a divisor holds 0")
    return NetcInputError(message, span, hints)


def _integer_inputs(specs: Sequence[InputSpec]) -> str:
    names = [f"'{s.name}'" for s in specs if s.dtype is not None and np.issubdtype(s.dtype, np.integer)]
    return " or ".join(names)
