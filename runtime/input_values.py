"""Run-time checks of integer input *values* that onnxruntime and the reference would
otherwise treat differently or wrap silently: an `embed` id must index its table
(0 <= id < vocabulary; a negative id would count from the end), `last(lengths=)` needs
1 <= length <= T (a length of 0 has no last step; index -1 would wrap to the end), and a
recurrence's `lengths` need 0 <= length <= T. Checked before running, the same way for
onnxruntime and the reference, with the op's source line in the message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from netc.compiler import dims as D
from netc.compiler.dims import Dim
from netc.compiler.ir import Graph
from netc.dsl.errors import NetcInputError, Span

RECURRENCES = ("rnn", "lstm", "gru")


@dataclass(frozen=True)
class ValueRule:
    """Values of input `name` must lie in [low, high]; `high` is a dim (T) or a number."""

    name: str
    low: int
    high: Dim
    what: str  # "ids of embed0", for the message
    span: Span | None
    vocabulary: Dim | None = None  # an embed's table size: the message then speaks of ids
    op: str = ""  # "the embed 'embed0'", for the note of a vocabulary rule


def value_rules(graph: Graph) -> list[ValueRule]:
    """The rules for integer inputs that an op consumes directly."""
    inputs = {id(v): v.name for v in graph.inputs if v.type.dtype.is_int}
    rules = []
    for op in graph.walk():
        args = op.inputs
        if op.kind == "embed" and args and args[0] is not None and id(args[0]) in inputs:
            table = args[1] if len(args) > 1 else None
            if table is not None and table.type.shape:
                rules.append(ValueRule(inputs[id(args[0])], 0, D.sub(table.type.shape[0], 1),
                                       f"ids of {op.label or 'embed'} (vocabulary {table.type.shape[0]})", op.span,
                                       table.type.shape[0], f"the embed '{op.label or 'embed'}'"))
        elif op.kind in ("last", *RECURRENCES) and len(args) > 1 and args[1] is not None and id(args[1]) in inputs:
            low = 1 if op.kind == "last" else 0
            steps = args[0].type.shape[0] if args[0] is not None and args[0].type.shape else None
            if steps is not None:
                rules.append(ValueRule(inputs[id(args[1])], low, steps,
                                       f"lengths of {op.label or op.kind} (at most T, the steps)", op.span))
    return rules


def check_values(rules: list[ValueRule], arrays: Mapping[str, np.ndarray], env: Mapping[str, int]) -> None:
    """Refuse input values outside their rules, naming the input, the value and the op."""
    for rule in rules:
        array = arrays.get(rule.name)
        if array is None or array.size == 0:
            continue
        try:
            high = D.evaluate(rule.high, env)
        except KeyError:
            continue  # a dim no input fixes: nothing to compare with
        low_seen, high_seen = int(array.min()), int(array.max())
        if low_seen < rule.low or high_seen > high:
            bad = low_seen if low_seen < rule.low else high_seen
            where = tuple(int(i) for i in np.argwhere(array == bad)[0])
            if rule.vocabulary is not None:  # the same words as an id onnxruntime itself refuses
                error = NetcInputError(f"input '{rule.name}' has id {bad} at index {list(where)}, the vocabulary is "
                                       f"{high + 1} (valid ids 0..{high})", None,
                                       ["map unknown words to a reserved id, or enlarge the vocabulary"])
                if rule.span is not None:
                    error.with_note(rule.span, f"{rule.op} reading it")
                raise error
            raise NetcInputError(f"input '{rule.name}' holds {bad} at index {list(where)}; the {rule.what} must be "
                                 f"within {rule.low}..{high}", rule.span,
                                 ["netc refuses such values rather than wrap them around"])
