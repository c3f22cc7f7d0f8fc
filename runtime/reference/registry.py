"""Registry of reference implementations: op kind -> NumPy function.

A reference function takes the op's input arrays positionally (None for an absent
optional input) and its attributes as keywords, and returns an array or a tuple.
Ops with regions register with `regions=True` and receive the interpreter and the op.
Random ops register with `random=True` and also receive `rng`, the NumPy generator of the
op for the current run (`interpreter.generator_for`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RefEntry:
    fn: Callable[..., Any]
    regions: bool = False
    random: bool = False


REFERENCE: dict[str, RefEntry] = {}


def ref(name: str, regions: bool = False, random: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in REFERENCE:
            raise RuntimeError(f"reference for {name} registered twice")
        REFERENCE[name] = RefEntry(fn, regions, random)
        return fn

    return register
