"""Recurrent cells and sequence structures: variable-length batches against each sequence
run alone, the documented conventions (GRU update gate, coupled and forget-bias LSTMs),
parameter names, the lowering choice, float64 through Scan, and located errors."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import netc
from netc.compiler.ir import DType
from netc.compiler.lowering import lower_graph
from netc.compiler.ops.recurrent import (
    AUTO_LOWERING,
    choose_lowering,
    export_torch_weights,
    import_torch_weights,
)
from netc.dsl.errors import NetcShapeError, NetcTypeError
from netc.runtime.reference import run_graph
from netc.runtime.session import make_session
from tests.conftest import assert_close, check_onnx

CELLS = {
    "rnn": "rnn(x, 3{opts})",
    "rnn-relu": "rnn(x, 3, act=relu{opts})",
    "lstm": "lstm(x, 3{opts})",
    "lstm-peephole": "lstm(x, 3, peephole=true, forget_bias=0.5, clip=2.0{opts})",
    "lstm-coupled": "lstm(x, 3, coupled=true, peephole=true{opts})",
    "gru": "gru(x, 3{opts})",
    "gru-after": 'gru(x, 3, reset="after"{opts})',
}


def _run(model, feeds):
    session = make_session(model).session
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def _state_lines(cell: str, init: bool) -> tuple[str, str, str]:
    """(init argument, assignment targets, output lines) for a cell with return_state."""
    is_lstm = cell.startswith("lstm")
    init_arg = (", init=(h0, c0)" if is_lstm else ", init=h0") if init else ""
    targets = "y, (h, c)" if is_lstm else "y, h"
    outputs = "  output out = y\n  output hn = h\n" + ("  output cn = c\n" if is_lstm else "")
    return init_arg, targets, outputs


def _lengths_network(cell: str, lowering: str, bidirectional: bool, layers: int, init: bool) -> str:
    init_arg, targets, outputs = _state_lines(cell, init)
    opts = (f', bidirectional={str(bidirectional).lower()}, layers={layers}, lengths=lens{init_arg}, '
            f'lowering="{lowering}", return_state=true')
    states = f"  input h0: f32[{layers * (2 if bidirectional else 1)}, N, 3]\n" if init else ""
    if init and cell.startswith("lstm"):
        states += f"  input c0: f32[{layers * (2 if bidirectional else 1)}, N, 3]\n"
    return (f"network Var {{\n  input x: f32[T, N, 2]\n  input lens: i32[N]\n{states}"
            f"  {targets} = {CELLS[cell].format(opts=opts)}\n{outputs}}}\n")


@pytest.mark.parametrize("lowering", ["native", "scan"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize(("bidirectional", "layers", "init"), [(False, 1, False), (True, 2, True)])
def test_padded_batch_matches_each_sequence_alone(cell, lowering, bidirectional, layers, init):
    compiled = netc.compile_source(_lengths_network(cell, lowering, bidirectional, layers, init), seed=3)
    check_onnx(compiled.model)
    rng = np.random.default_rng(5)
    T, lens = 6, np.array([6, 2, 0, 4], np.int32)
    n_states = layers * (2 if bidirectional else 1)
    feeds = {"x": rng.standard_normal((T, len(lens), 2)).astype(np.float32), "lens": lens}
    if init:
        feeds["h0"] = rng.standard_normal((n_states, len(lens), 3)).astype(np.float32)
        if cell.startswith("lstm"):
            feeds["c0"] = rng.standard_normal((n_states, len(lens), 3)).astype(np.float32)
    batch = _run(compiled.model, feeds)
    assert_close(batch, run_graph(compiled.graph, compiled.params, feeds), "f32", f"{cell} reference")
    for n, length in enumerate(lens):
        y = batch["out"][:, n]
        np.testing.assert_array_equal(y[length:], 0.0, err_msg="padded steps are zero")
        if length == 0:
            for state in ("hn", "cn"):
                if state in batch:
                    np.testing.assert_array_equal(batch[state][:, n], 0.0, err_msg="empty sequence: zero state")
            continue
        alone = {"x": feeds["x"][:length, n:n + 1].copy(), "lens": np.array([length], np.int32)}
        for key in ("h0", "c0"):
            if key in feeds:
                alone[key] = feeds[key][:, n:n + 1].copy()
        single = _run(compiled.model, alone)
        np.testing.assert_allclose(y[:length], single["out"][:, 0], rtol=1e-5, atol=1e-6)
        for state in ("hn", "cn"):
            if state in batch:
                np.testing.assert_allclose(batch[state][:, n], single[state][:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", list(CELLS))
def test_float64_runs_through_scan(cell):
    opts = ', bidirectional=true, layers=2, lengths=lens, init=(h0, c0), return_state=true' \
        if cell.startswith("lstm") else ", bidirectional=true, layers=2, lengths=lens, init=h0, return_state=true"
    _, targets, outputs = _state_lines(cell, True)
    states = "  input h0: f64[4, N, 3]\n" + ("  input c0: f64[4, N, 3]\n" if cell.startswith("lstm") else "")
    text = (f"network F {{\n  input x: f64[T, N, 2]\n  input lens: i32[N]\n{states}"
            f"  {targets} = {CELLS[cell].format(opts=opts)}\n{outputs}}}\n")
    compiled = netc.compile_source(text, seed=1)
    check_onnx(compiled.model)
    assert "Scan" in _op_types_of(compiled.model.graph)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((5, 3, 2)), "lens": np.array([5, 1, 3], np.int32),
             "h0": rng.standard_normal((4, 3, 3)), "c0": rng.standard_normal((4, 3, 3))}
    feeds = {k: v for k, v in feeds.items() if k in {i.name for i in compiled.graph.inputs}}
    assert_close(_run(compiled.model, feeds), run_graph(compiled.graph, compiled.params, feeds), "f64", cell)


def _single_step(expr: str, params_fn, x: np.ndarray, h0: np.ndarray | None = None):
    text = "network S {\n  input x: f32[1, 1, 2]\n" + ("  input h0: f32[1, 1, 2]\n" if h0 is not None else "") \
        + f"  output y = {expr}\n}}\n"
    compiled = netc.compile_source(text)
    params = params_fn(dict(compiled.params))
    feeds = {"x": x} | ({"h0": h0} if h0 is not None else {})
    outs = {}
    for lowering in ("native", "scan"):
        graph_text = text.replace(")\n}", f', lowering="{lowering}")\n}}')
        c = netc.compile_source(graph_text)
        outs[lowering] = _run(lower_graph(c.graph, params), feeds)["y"]
    outs["reference"] = run_graph(compiled.graph, params, feeds)["y"]
    return outs


def test_gru_update_gate_is_the_share_of_the_new_state():
    """netc's z follows the lectures: h_t = (1 - z) h_{t-1} + z h~; z -> 1 takes h~."""
    x = np.array([[[0.3, -0.2]]], np.float32)
    h0 = np.array([[[0.5, -0.5]]], np.float32)

    def saturate(z_bias):
        def fn(params):
            rb = params["gru0.l0.fwd.rb"].copy()
            rb[:2] = z_bias  # netc order z, r, h: the z rows
            return params | {"gru0.l0.fwd.rb": rb}
        return fn

    keep = _single_step("gru(x, 2, init=h0)", saturate(-50.0), x, h0)
    for name, y in keep.items():
        np.testing.assert_allclose(y[0, 0], h0[0, 0], atol=1e-6, err_msg=f"{name}: z = 0 keeps h")
    take = _single_step("gru(x, 2, init=h0)", saturate(50.0), x, h0)
    for name, y in take.items():
        assert not np.allclose(y[0, 0], h0[0, 0], atol=1e-3), f"{name}: z = 1 takes the candidate"
        np.testing.assert_allclose(y, take["reference"], rtol=1e-5, atol=1e-6)


def test_lstm_forget_bias_adds_to_the_forget_gate():
    text = "network F {{\n  input x: f32[4, 2, 3]\n  output y = lstm(x, 5{opt}, lowering=\"{low}\")\n}}\n"
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((4, 2, 3)).astype(np.float32)}
    for low in ("native", "scan"):
        with_bias = netc.compile_source(text.format(opt=", forget_bias=1.5", low=low), seed=2)
        plain = netc.compile_source(text.format(opt="", low=low), seed=2)
        params = dict(plain.params)
        b = params["lstm0.l0.fwd.b"].copy()
        b[5:10] += 1.5  # netc order i, f, c, o: the f rows
        params["lstm0.l0.fwd.b"] = b
        np.testing.assert_allclose(_run(with_bias.model, feeds)["y"], _run(lower_graph(plain.graph, params), feeds)["y"],
                                   rtol=1e-5, atol=1e-6)


def test_coupled_lstm_has_three_gates():
    compiled = netc.compile_source("network C {\n  input x: f32[T, N, 6]\n"
                                   "  output y = lstm(x, 4, coupled=true, peephole=true)\n}\n")
    shapes = {p.name: p.shape for p in compiled.graph.params}
    assert shapes == {"lstm0.l0.fwd.W": (12, 6), "lstm0.l0.fwd.R": (12, 4), "lstm0.l0.fwd.b": (12,),
                      "lstm0.l0.fwd.rb": (12,), "lstm0.l0.fwd.p": (8,)}


def test_parameter_names_and_shapes():
    compiled = netc.compile_source("network P {\n  input x: f32[T, N, 6]\n"
                                   "  h = lstm(x, 4, bidirectional=true, layers=2, peephole=true, name=\"enc\")\n"
                                   "  output y = gru(h, 5)\n}\n")
    shapes = {p.name: p.shape for p in compiled.graph.params}
    for d in ("fwd", "bwd"):
        assert shapes[f"enc.l0.{d}.W"] == (16, 6)
        assert shapes[f"enc.l1.{d}.W"] == (16, 8)
        assert shapes[f"enc.l1.{d}.R"] == (16, 4)
        assert shapes[f"enc.l1.{d}.b"] == shapes[f"enc.l1.{d}.rb"] == (16,)
        assert shapes[f"enc.l1.{d}.p"] == (12,)
    assert shapes["gru0.l0.fwd.W"] == (15, 8)
    assert "gru0.l0.bwd.W" not in shapes
    assert compiled.graph.outputs["y"].type.shape[2] == 5


def test_output_and_state_types():
    compiled = netc.compile_source("network S {\n  input x: f32[T, N, 3]\n"
                                   "  y, (h, c) = lstm(x, 4, bidirectional=true, layers=3, return_state=true)\n"
                                   "  output a = y\n  output b = h\n  output cc = c\n}\n")
    out = {k: str(v.type) for k, v in compiled.graph.outputs.items()}
    assert out == {"a": "f32[T, N, 8]", "b": "f32[6, N, 4]", "cc": "f32[6, N, 4]"}


def _op_types(text: str) -> set[str]:
    return _op_types_of(netc.compile_source(text).model.graph)


def _guarded(graph) -> list:
    """The graph's nodes, with those of the else branch of the If that guards a Scan against
    0 steps (compiler/ops/scan_guard.py) in place of the If."""
    nodes = []
    for n in graph.node:
        if n.op_type == "If":
            nodes += _guarded(next(a.g for a in n.attribute if a.name == "else_branch"))
        else:
            nodes.append(n)
    return nodes


def _op_types_of(graph) -> set[str]:
    return {n.op_type for n in _guarded(graph)}


def test_auto_lowering_follows_the_table():
    for cell in AUTO_LOWERING:
        for hidden, batch in ((4, "N"), (128, "N"), (128, "2"), (128, "8")):
            types = _op_types(f"network A {{\n  input x: f32[T, {batch}, 3]\n  output y = {cell}(x, {hidden})\n}}\n")
            choice = choose_lowering(cell, DType.f32, "auto", hidden, int(batch) if batch.isdigit() else None)
            native = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
            assert (native in types) == (choice == "native"), (cell, hidden, batch, types)
            assert ("Scan" in types) == (choice == "scan"), (cell, hidden, batch, types)
    assert AUTO_LOWERING == {"rnn": "scan", "lstm": "native", "gru": "scan"}
    assert choose_lowering("gru", DType.f32, hidden=256) == "scan"
    assert choose_lowering("gru", DType.f32, hidden=64) == "native"
    assert choose_lowering("gru", DType.f32, hidden=256, batch=1) == "native"
    assert choose_lowering("rnn", DType.f32, hidden=256, batch=1) == "scan"
    assert choose_lowering("rnn", DType.f32, hidden=16) == "native"
    assert choose_lowering("lstm", DType.f64) == "scan"
    assert choose_lowering("rnn", DType.f32, "native") == "native"


def test_scan_body_hoists_the_input_projection():
    model = netc.compile_source('network A {\n  input x: f32[T, N, 3]\n'
                                '  output y = lstm(x, 4, bidirectional=true, lowering="scan")\n}\n').model
    top = collections.Counter(n.op_type for n in _guarded(model.graph))
    assert top["MatMul"] == 2 and top["Scan"] == 1  # one projection per direction, one loop for both
    scan = next(n for n in _guarded(model.graph) if n.op_type == "Scan")
    body = next(a.g for a in scan.attribute if a.name == "body")
    assert "MatMul" not in {n.op_type for n in body.node}
    assert list(next(a.ints for a in scan.attribute if a.name == "scan_output_directions")) == [0, 1]


def test_pyramid_symbolic_drops_the_remainder():
    compiled = netc.compile_source("network P {\n  input x: f32[T, N, 2]\n  output y = pyramid(x, 2)\n}\n")
    assert str(compiled.graph.outputs["y"].type) == "f32[T//2, N, 4]"
    x = np.arange(5 * 1 * 2, dtype=np.float32).reshape(5, 1, 2)
    y = _run(compiled.model, {"x": x})["y"]
    np.testing.assert_array_equal(y, [[[0, 1, 2, 3]], [[4, 5, 6, 7]]])


def test_delay_and_last():
    compiled = netc.compile_source("network D {\n  input x: f32[T, N]\n  input lens: i32[N]\n"
                                   "  output d = delay(x, 2)\n  output l = last(x, lens)\n  output e = last(x)\n}\n")
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    out = _run(compiled.model, {"x": x, "lens": np.array([1, 3], np.int32)})
    np.testing.assert_array_equal(out["d"], [[0, 0], [0, 0], [0, 1], [2, 3]])
    np.testing.assert_array_equal(out["l"], [0, 5])
    np.testing.assert_array_equal(out["e"], [6, 7])


def test_torch_mapping_round_trip():
    rng = np.random.default_rng(0)
    for cell, gates in (("rnn", 1), ("lstm", 4), ("gru", 3)):
        state = {}
        for layer in range(2):
            for suffix in ("", "_reverse"):
                d_in = 5 if layer == 0 else 8
                state[f"weight_ih_l{layer}{suffix}"] = rng.standard_normal((gates * 4, d_in))
                state[f"weight_hh_l{layer}{suffix}"] = rng.standard_normal((gates * 4, 4))
                state[f"bias_ih_l{layer}{suffix}"] = rng.standard_normal(gates * 4)
                state[f"bias_hh_l{layer}{suffix}"] = rng.standard_normal(gates * 4)
        params = import_torch_weights(state, cell, "enc")
        assert len(params) == 16 and "enc.l1.bwd.rb" in params
        back = export_torch_weights(params, cell, "enc")
        assert back.keys() == state.keys()
        for k in state:
            np.testing.assert_array_equal(back[k], state[k])
    gru = import_torch_weights({"weight_ih_l0": np.arange(6.0).reshape(6, 1), "weight_hh_l0": np.zeros((6, 2))},
                               "gru", "g")
    np.testing.assert_array_equal(gru["g.l0.fwd.W"][:, 0], [-2, -3, 0, 1, 4, 5])  # (r, z, n) -> (-z, r, h)
    np.testing.assert_array_equal(gru["g.l0.fwd.b"], 0.0)


# ---------------------------------------------------------------------------- errors


ERRORS = [
    ("input x: f32[N, 3]", "lstm(x, 4)", NetcShapeError, "time-major sequence [T, N, D]"),
    ("input x: f32[T, N, D]", "gru(x, 4)", NetcShapeError, "must be known at compile time"),
    ("input x: i64[T, N, 3]", "rnn(x, 4)", NetcTypeError, "floating-point"),
    ("input x: f32[T, N, 3]\n  input h0: f32[2, N, 4]", "rnn(x, 4, init=h0)", NetcShapeError,
     "initial state h0 must be f32[1, N, 4]"),
    ("input x: f32[T, N, 3]\n  input h0: f32[2, N, 4]", "gru(x, 5, bidirectional=true, init=h0)", NetcShapeError,
     "must be f32[2, N, 5]"),
    ("input x: f32[T, N, 3]\n  input h0: f32[1, N, 4]", "lstm(x, 4, init=h0)", NetcTypeError, "tuple (h0, c0)"),
    ("input x: f32[T, N, 3]\n  input h0: f32[1, N, 4]\n  input c0: f32[1, 2, 4]", "lstm(x, 4, init=(h0, c0))",
     NetcShapeError, "initial state c0"),
    ("input x: f32[T, N, 3]\n  input lens: i64[N]", "lstm(x, 4, lengths=lens)", NetcTypeError,
     "lengths must be i32[N]"),
    ("input x: f32[T, N, 3]\n  input lens: i32[M]", "gru(x, 4, lengths=lens)", NetcShapeError,
     "lengths must be i32[N]"),
    ("input x: f32[T, N, 3]\n  input lens: i32[N, 1]", "last(x, lens)", NetcShapeError, "lengths must be i32[N]"),
    ("input x: f64[T, N, 3]", 'lstm(x, 4, lowering="native")', NetcTypeError, "float32-only"),
    ("input x: f32[T, N, 3]", 'gru(x, 4, reset="middle")', NetcTypeError, "one of before, after"),
    ("input x: f32[T, N, 3]", "lstm(x, 4, clip=-1.0)", NetcTypeError, "positive number"),
    ("input x: f32[T, N, 3]", "lstm(x, 4, coupled=true, forget_bias=1.0)", NetcTypeError, "no effect"),
    ("input x: f32[T, N, 3]", "lstm(x, 4, lengths=3)", NetcTypeError, "tensor or none"),
    ("input x: f32[5, N, 3]", "pyramid(x, 2)", NetcShapeError, "do not divide"),
    ("input x: f32[5, N]", "pyramid(x, 2)", NetcShapeError, "time-major sequence"),
    ("input x: f32[5, N, 3]", "delay(x, -1)", NetcTypeError, "k must be >= 0"),
    ("input x: f32[5]", "last(x)", NetcShapeError, "rank 1"),
]


@pytest.mark.parametrize(("inputs", "expr", "cls", "message"), ERRORS, ids=[e[1] for e in ERRORS])
def test_errors_are_located(inputs, expr, cls, message):
    text = f"network E {{\n  {inputs}\n  output y = {expr}\n}}\n"
    with pytest.raises(cls) as info:
        netc.compile_source(text)
    err = info.value
    assert message in err.message, err.message
    line = len(inputs.splitlines()) + 2
    assert err.span is not None and err.span.line == line, err.span
    start = text.splitlines()[line - 1].index(expr) + 1
    assert start <= err.span.col < start + len(expr), err.span
