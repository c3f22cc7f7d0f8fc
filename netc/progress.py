"""Progress on long work, on stderr, only when stderr is a terminal (and not `-q`).

The pipeline reports through the active reporter — `stage("lower")` around a stage,
`counter("verify", total)` for counted work — which is silent unless the command line
turned it on. The bars are tqdm's (a small, well-kept library with no dependencies of its
own); it is imported only when a reporter is on, so that piped and scripted runs (and
`netc compile`'s start-up) never pay for it.

    parse 0.01 s | elaborate 0.21 s | lower 1.73 s | save 0.40 s      (one line, redrawn)
    verify seeds: 2/3 [4.1 s]
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any


class _Silent:
    """The default reporter: does nothing."""

    enabled = False

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        yield

    def counter(self, name: str, total: int | None, unit: str = "") -> _Count:
        return _Count(None)

    def finish(self) -> None:
        pass


class _Count:
    """A counter: `update()` per finished item, `close()` at the end (a no-op when silent)."""

    def __init__(self, bar: Any):
        self._bar = bar

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> _Count:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Terminal(_Silent):
    """Stages and counters drawn on `stream` (a terminal) with tqdm."""

    enabled = True

    def __init__(self, stream: IO[str]):
        from tqdm import tqdm  # only here: a terminal is watching

        self._tqdm = tqdm
        self._stream = stream
        self._done: list[str] = []
        self._ncols, self._nrows = _size(stream)
        self._line = tqdm(total=0, bar_format="{desc}", file=stream, leave=True, ncols=self._ncols,
                          nrows=self._nrows)

    def _show(self, current: str | None = None) -> None:
        parts = list(self._done) + ([f"{current} ..."] if current else [])
        self._line.set_description_str(" | ".join(parts), refresh=True)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._show(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self._done.append(f"{name} {time.perf_counter() - start:.2f} s")
            self._show()

    def counter(self, name: str, total: int | None, unit: str = "") -> _Count:
        bar = self._tqdm(total=total, desc=name, unit=unit or "it", file=self._stream, leave=False,
                         ncols=self._ncols, nrows=self._nrows,
                         bar_format="{desc}: {n_fmt}/{total_fmt} " + (unit + " " if unit else "")
                                    + "[{elapsed_s:.1f} s]")
        return _Count(bar)

    def finish(self) -> None:
        if self._done:
            self._line.close()
        else:  # nothing was staged: leave no empty line behind
            self._line.leave = False
            self._line.close()


_active: _Silent = _Silent()


def current() -> _Silent:
    return _active


def stage(name: str) -> contextlib.AbstractContextManager[None]:
    """Report the stage `name` (with its duration in seconds) on the active reporter."""
    return _active.stage(name)


def counter(name: str, total: int | None, unit: str = "") -> _Count:
    return _active.counter(name, total, unit)


@contextlib.contextmanager
def reporting(quiet: bool = False, stream: IO[str] | None = None) -> Iterator[None]:
    """Turn progress on for the enclosed work when `stream` (default stderr) is a terminal
    and not `quiet`."""
    global _active
    stream = stream or sys.stderr
    if quiet or not _isatty(stream):
        yield
        return
    previous, _active = _active, Terminal(stream)
    try:
        yield
    finally:
        _active.finish()
        _active = previous


def _size(stream: IO[str]) -> tuple[int, int]:
    """The terminal's columns and rows; 80 x 24 where it reports none (a pseudo-terminal
    nobody sized says 0 x 0, and tqdm then draws nothing)."""
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns or 80, size.lines or 24
    except (AttributeError, ValueError, OSError):
        return 80, 24


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file
        return False
