"""The draw-ahead pipeline of `netc compile`: every parameter's pieces, in order, exactly
the values drawn at once, with any number of workers; a failing draw reaches the writer;
a writer that stops early leaves no thread behind."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from netc.draw_ahead import DrawAhead
from netc.model_writer import TensorSpec

SPECS = [TensorSpec(f"p{i}", shape, np.dtype(dtype)) for i, (shape, dtype) in
         enumerate([((7, 3), "float32"), ((0,), "float32"), ((5,), "float64"), ((2, 2, 2), "float32"),
                    ((1,), "int64"), ((33,), "float32")])]


def _fill_of(spec: TensorSpec):
    rng = np.random.default_rng(abs(hash(spec.name)) % 2**32)

    def fill(out: np.ndarray) -> None:  # a stream: consecutive pieces continue it
        out[...] = rng.integers(0, 1000, out.size).astype(out.dtype)

    return fill


def _whole(spec: TensorSpec) -> np.ndarray:
    out = np.empty(int(np.prod(spec.shape)), spec.dtype)
    _fill_of(spec)(out)
    return out


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
@pytest.mark.parametrize("piece_bytes", [4, 8, 24, 1 << 20])
def test_pieces_are_the_whole_values_in_order(workers: int, piece_bytes: int) -> None:
    with DrawAhead(SPECS, _fill_of, piece_bytes, workers=workers) as ahead:
        for spec in SPECS:
            pieces = [p.copy() for p in ahead.pieces(spec)]  # a piece lives until the next
            assert all(p.dtype == spec.dtype and p.nbytes <= max(piece_bytes, 8) for p in pieces)  # 8: the widest value
            got = np.concatenate(pieces) if pieces else np.empty(0, spec.dtype)
            np.testing.assert_array_equal(got, _whole(spec), err_msg=spec.name)


def test_a_parameter_asked_out_of_order_is_refused() -> None:
    with DrawAhead(SPECS, _fill_of, 64, workers=2) as ahead, \
            pytest.raises(ValueError, match="p1 asked out of order"):
        next(ahead.pieces(SPECS[1]))


def test_a_failing_draw_is_raised_to_the_writer() -> None:
    def fill_of(spec: TensorSpec):
        if spec.name == "p3":
            def fail(out: np.ndarray) -> None:
                raise MemoryError("no room for p3")
            return fail
        return _fill_of(spec)

    with DrawAhead(SPECS, fill_of, 16, workers=2) as ahead:
        for spec in SPECS[:3]:
            list(ahead.pieces(spec))
        with pytest.raises(MemoryError, match="p3"):
            list(ahead.pieces(SPECS[3]))


def test_stopping_early_ends_the_workers() -> None:
    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt), DrawAhead(SPECS, _fill_of, 8, workers=3, buffers=1) as ahead:
        next(ahead.pieces(SPECS[0]))  # the workers are now blocked on full rings
        raise KeyboardInterrupt
    assert threading.active_count() == before


def test_workers_follow_the_cores_up_to_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    import netc.draw_ahead as draw_ahead

    monkeypatch.setattr(draw_ahead.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert draw_ahead.default_workers() == draw_ahead.MAX_WORKERS  # rings stay a few pieces on big machines
    monkeypatch.setattr(draw_ahead.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert draw_ahead.default_workers() == 1
