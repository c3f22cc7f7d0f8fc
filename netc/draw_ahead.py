"""Draw generated weights ahead of the writer, across parameters, on every core.

`netc compile` writes each parameter right after drawing it. Drawn one parameter at a time,
drawing and writing take turns: ResNet-50 has 537 parameters, most under one piece, so
nothing overlaps and the compile takes the sum of both. Here worker threads draw the
parameters ahead, in pieces, into small rings of buffers, while the writer takes the
filled pieces in file order and returns each buffer once written. Parameters are dealt to
the workers in turn (parameter i to worker i % workers): a parameter's values are one
generator stream, drawn in order by one thread, and each worker's queue is read in its own
order, so no worker ever waits on another. NumPy's generators and file writes release the
GIL, so drawing runs on every core and overlaps the writing; the memory used is the rings,
whatever the size of the model.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from netc.model_writer import TensorSpec

Fill = Callable[[np.ndarray], None]


class _Worker:
    """One thread drawing its share of the parameters into its own ring of buffers."""

    def __init__(self, jobs: list[tuple[int, TensorSpec]], fill_of: Callable[[TensorSpec], Fill],
                 piece_bytes: int, buffers: int) -> None:
        self.jobs = jobs
        self.fill_of = fill_of
        self.piece_bytes = piece_bytes
        self.free: queue.Queue[np.ndarray] = queue.Queue()
        for _ in range(buffers):
            self.free.put(np.empty(piece_bytes, np.uint8))
        # (parameter index, filled view, its buffer), or the exception the drawing raised.
        self.filled: queue.Queue[tuple[int, np.ndarray, np.ndarray] | BaseException] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="netc-draw", daemon=True)

    def _run(self) -> None:
        try:
            for index, spec in self.jobs:
                itemsize = np.dtype(spec.dtype).itemsize
                count = spec.nbytes // itemsize
                per = max(1, self.piece_bytes // itemsize)
                fill = self.fill_of(spec)
                for start in range(0, count, per):
                    buffer = self.free.get()  # at most `buffers` pieces wait for the writer
                    if self.stop.is_set():
                        return
                    view = buffer[:per * itemsize].view(spec.dtype)[:min(per, count - start)]
                    fill(view)
                    self.filled.put((index, view, buffer))
        except BaseException as err:  # handed to the reader, raised there
            self.filled.put(err)

    def close(self) -> None:
        self.stop.set()
        self.free.put(np.empty(0, np.uint8))  # wakes the thread if it waits for a buffer
        self.thread.join()


class DrawAhead:
    """Pieces of every parameter of `specs`, drawn by `fill_of(spec)` (a function that fills
    consecutive slices of the flattened values) in worker threads. Use as a context manager
    and read each parameter's pieces with `pieces(spec)`, in the order of `specs`."""

    def __init__(self, specs: Sequence[TensorSpec], fill_of: Callable[[TensorSpec], Fill],
                 piece_bytes: int, workers: int | None = None, buffers: int = 2) -> None:
        self._specs = list(specs)
        piece_bytes = max([piece_bytes, *(np.dtype(s.dtype).itemsize for s in self._specs)])  # a value fits
        workers = max(1, min(workers or default_workers(), len(self._specs)))
        self._workers = [_Worker([(i, s) for i, s in enumerate(self._specs) if i % workers == w],
                                 fill_of, piece_bytes, buffers) for w in range(workers)]
        self._next = 0  # index of the next parameter the reader may ask for
        self._held: tuple[_Worker, np.ndarray] | None = None  # the piece last handed out

    def __enter__(self) -> DrawAhead:
        for worker in self._workers:
            worker.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()
        for worker in self._workers:
            worker.close()

    def pieces(self, spec: TensorSpec) -> Iterator[np.ndarray]:
        """The pieces of `spec`, the next parameter in order. A piece is valid until the next
        one is asked for (its buffer then goes back to its worker)."""
        index = self._next
        if index >= len(self._specs) or self._specs[index] != spec:
            raise ValueError(f"parameter {spec.name} asked out of order")
        self._next += 1
        worker = self._workers[index % len(self._workers)]
        remaining = spec.nbytes
        while remaining > 0:
            self._release()
            item = worker.filled.get()
            if isinstance(item, BaseException):
                raise item
            got, view, buffer = item
            if got != index:  # pragma: no cover - each worker follows the reader's order
                raise RuntimeError(f"parameter {spec.name}: a piece of parameter {got}")
            self._held = (worker, buffer)
            remaining -= view.nbytes
            yield view
        self._release()

    def _release(self) -> None:
        if self._held is not None:
            worker, buffer = self._held
            worker.free.put(buffer)
            self._held = None


MAX_WORKERS = 4  # past this the single writer is the bottleneck, and each worker holds its own ring


def default_workers() -> int:
    """One drawing thread per core this process may use (the writer mostly waits), at most
    MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))
