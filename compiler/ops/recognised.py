"""Lowering a `recur` whose step `compiler/passes/recognise_cells.py` recognised as a
standard cell: exactly as the built-in cell with the same weights lowers (the native op
or the Scan form, by `choose_lowering`), fed from the step's own parameters, which nodes
on the initializers slice, transpose, negate and stack into the built-in's `W`, `R`, `b`,
`rb`, `p` (onnxruntime folds them when it loads the model). An empty sequence gives the
initial state, as `recur` defines it (the built-in cells give zeros)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from netc.compiler.ir import DType, Op, TensorType
from netc.compiler.ops import scan_guard
from netc.compiler.ops.recurrent import _lower_native, _lower_scan, _Spec, choose_lowering, gates_of


def lower_recognised(ctx, op: Op, inputs: list[str]) -> list[str]:
    cell = op.attrs["cell"]
    n_state = op.attrs["n_state"]
    states, xs = op.inputs[:n_state], op.inputs[n_state]
    hidden = cell["hidden"]
    width = xs.type.shape[2]
    y_t = TensorType(xs.type.dtype, (xs.type.shape[0], *states[0].type.shape))
    types = [*(s.type for s in states), y_t]
    # The built-in's lowering reads the sequence's type and the layer's label from its op.
    seq_op = SimpleNamespace(inputs=[xs], label=op.label, kind=cell["cell"])
    spec = _Spec(cell["cell"], hidden, 1, 1, cell.get("act", "tanh"), cell["peephole"], cell["coupled"], 0.0, None,
                 cell["reset"], xs.type.dtype.numpy, seq_op)

    def emit(scope) -> list[str]:
        def block(entry, rows: int | None) -> str:  # one gate's rows of W / R (rows = fan-in) or b / rb
            if entry is None:
                return ctx.const(np.zeros([hidden] if rows is None else [hidden, rows], np.float32), "zeros")
            param, k, n, neg = entry
            name = scope.name_of(param)
            if n > 1:
                axis = 0 if rows is None else 1
                name = scope.node("Slice", [name, ctx.ints([k * hidden]), ctx.ints([(k + 1) * hidden]),
                                            ctx.ints([axis])])[0]
            if rows is not None:
                name = scope.node("Transpose", [name], perm=[1, 0])[0]  # dense's [in, out] -> [out, in]
            return scope.node("Neg", [name])[0] if neg else name

        def stacked(role: str, rows: int | None) -> str:
            parts = [block(cell["gates"][g][role], rows) for g in gates_of(cell["cell"], cell["coupled"])]
            return scope.node("Concat", parts, axis=0)[0] if len(parts) > 1 else parts[0]

        params = [stacked("W", width), stacked("R", hidden), stacked("b", None), stacked("rb", None)]
        if cell["peephole"]:
            peeps = [scope.name_of(p) if not neg else scope.node("Neg", [scope.name_of(p)])[0]
                     for p, neg in cell["p"]]
            params.append(scope.node("Concat", peeps, axis=0)[0])
        init = [scope.node("Unsqueeze", [inputs[k], ctx.ints([0])])[0] for k in range(n_state)]
        built = [inputs[n_state], "", init[0], init[1] if n_state == 2 else "", *params]
        outs = _lower_native(scope, spec, built) if native else _lower_scan(scope, spec, built, seq_op)
        finals = [scope.node("Squeeze", [s, ctx.ints([0])])[0] for s in outs[1:1 + n_state]]
        return [*finals, outs[0]]

    native = choose_lowering(cell["cell"], DType.f32, "auto", hidden, xs.type.shape[1]) == "native"
    steps = xs.type.shape[0]
    if native:
        # The native ops run 0 steps (the GRU behind its own guard) and give zero states; `recur`
        # keeps the initial state: one Where per state, cheaper than an If around the op.
        outs = emit(ctx)
        if isinstance(steps, int) and steps > 0:
            return outs
        ran = ctx.node("Greater", [ctx.node("Shape", [inputs[n_state]], start=0, end=1)[0], ctx.ints([0])])[0]
        return [*(ctx.node("Where", [ran, outs[k], inputs[k]])[0] for k in range(n_state)), outs[n_state]]

    def empty(scope) -> list[str]:  # no step ran: the initial state, as `recur` defines it
        return [*(scope.node("Identity", [inputs[k]])[0] for k in range(n_state)), scan_guard.empty_of(scope, y_t)]

    return scan_guard.guard_empty(ctx, steps, inputs[n_state], types, emit, empty)
