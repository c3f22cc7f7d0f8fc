"""Lowering a `recur` whose step `compiler/passes/recognise_cells.py` recognised as a
standard cell: the native op the built-in cell takes, fed from the step's own parameters
(regated, transposed and stacked by nodes on the initializers, which onnxruntime folds when
it loads the model)."""

from __future__ import annotations

import numpy as np

from netc.compiler.ir import Op, TensorType
from netc.compiler.ops import scan_guard

_ONNX_LSTM_GATES = ("i", "o", "f", "g")  # ONNX's order of the four gate blocks (c is our g)


def lower_recognised(ctx, op: Op, inputs: list[str]) -> list[str]:
    cell = op.attrs["cell"]
    h0, c0, xs = op.inputs[:3]
    hidden = cell["hidden"]
    y_t = TensorType(xs.type.dtype, (xs.type.shape[0], *h0.type.shape))
    types = [h0.type, c0.type, y_t]

    def emit(scope) -> list[str]:
        def gates(value) -> str:  # [rows, 4H] in the split's order -> [4H, rows] in ONNX's order
            parts = scope.node("Split", [scope.name_of(value)], n_out=4, axis=1, num_outputs=4)
            joined = scope.node("Concat", [parts[cell["order"][g]] for g in _ONNX_LSTM_GATES], axis=1)[0]
            return scope.node("Transpose", [joined], perm=[1, 0])[0]

        w = scope.node("Unsqueeze", [gates(cell["Wx"]), ctx.ints([0])])[0]
        r = scope.node("Unsqueeze", [gates(cell["Wh"]), ctx.ints([0])])[0]
        zeros = ctx.const(np.zeros(4 * hidden, np.float32), "zeros")
        if cell["bx"] is not None:
            bias = scope.node("Split", [scope.name_of(cell["bx"])], n_out=4, axis=0, num_outputs=4)
            wb = scope.node("Concat", [bias[cell["order"][g]] for g in _ONNX_LSTM_GATES], axis=0)[0]
        else:
            wb = zeros
        b = scope.node("Unsqueeze", [scope.node("Concat", [wb, zeros], axis=0)[0], ctx.ints([0])])[0]
        h = scope.node("Unsqueeze", [inputs[0], ctx.ints([0])])[0]
        c = scope.node("Unsqueeze", [inputs[1], ctx.ints([0])])[0]
        node_inputs = [inputs[2], w, r, b, "", h, c]
        if cell["p_i"] is not None:  # ONNX's peephole order: i, o, f
            p = scope.node("Concat", [scope.name_of(cell[k]) for k in ("p_i", "p_o", "p_f")], axis=0)[0]
            node_inputs.append(scope.node("Unsqueeze", [p, ctx.ints([0])])[0])
        y, y_h, y_c = scope.node("LSTM", node_inputs, n_out=3, hidden_size=hidden, layout=0,
                                 direction="forward", input_forget=0)
        return [scope.node("Squeeze", [y_h, ctx.ints([0])])[0], scope.node("Squeeze", [y_c, ctx.ints([0])])[0],
                scope.node("Squeeze", [y, ctx.ints([1])])[0]]

    def empty(scope) -> list[str]:  # no step ran: the initial state, as `recur` defines it
        return [scope.node("Identity", [inputs[0]])[0], scope.node("Identity", [inputs[1]])[0],
                scan_guard.empty_of(scope, y_t)]

    return scan_guard.guard_empty(ctx, xs.type.shape[0], inputs[2], types, emit, empty)
