"""Least sizes of symbolic dims: every symbolic dim a shape rule makes must be at least 1
for the sizes the network accepts.

A dim such as `T - 4` (a valid conv1d of width 5) is positive only for `T >= 5`. Each time
a shape is made, the builder hands its symbolic dims to `MinSizes.require`, which raises the
least size of the named dims just enough for the dim to be >= 1, remembering the span that
asked for it. Minima compose through the network because every accepted dim is provably
*nondecreasing* in each name above the minima: raising a minimum later (for another op)
never makes an earlier dim smaller. A dim that is not provably nondecreasing (`0 - N`,
`T - N`) is refused where it is made, since it is <= 0 for some sizes however large.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from netc.compiler import dims as D
from netc.compiler.dims import Dim, FloorDiv, Sym
from netc.dsl.errors import NetcShapeError, Span

SEARCH_LIMIT = 2**62  # least sizes beyond this are "never": no int64 tensor dim is larger


@dataclass
class MinSizes:
    """The least size of each named dim, and where the binding requirement was made."""

    minima: dict[str, int] = field(default_factory=dict)
    spans: dict[str, Span | None] = field(default_factory=dict)
    _satisfied: set[Sym] = field(default_factory=set)

    def env(self, names: set[str] | list[str]) -> dict[str, int]:
        return {s: self.minima.get(s, 1) for s in names}

    def require(self, d: Dim, span: Span | None) -> None:
        """Raise the minima so that `d >= 1` for every size at or above them, or refuse `d`."""
        if isinstance(d, int) or d in self._satisfied:
            return
        names = sorted(D.symbols(d))
        if not nondecreasing(d, self.minima):
            raise _not_positive(d, self.env(names), span)
        least = _least_uniform(d, self.minima, names)
        if least is None:
            raise NetcShapeError(f"dimension {_text(d)} is never positive, however large "
                                 f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'}", span)
        for name in names:
            if least > self.minima.get(name, 1):
                self.minima[name] = least
                self.spans[name] = span
        self._satisfied.add(d)

    def requirement_text(self) -> str:
        """`T >= 5`, in the order the names first needed more than 1; empty when none did."""
        return ", ".join(f"{name} ≥ {m}" for name, m in self.minima.items() if m > 1)


def nondecreasing(d: Dim, minima: Mapping[str, int]) -> bool:
    """True when `d` provably does not decrease as any named dim grows above `minima`: every
    term has a positive coefficient and is one nondecreasing atom, or a product of atoms that
    are also >= 1 there (a product of a factor that may be <= 0 could fall)."""
    if isinstance(d, int):
        return True
    for mono, coeff in d.terms:
        if not mono:
            continue
        if coeff < 0 or not all(_atom_nondecreasing(a, minima) for a in mono):
            return False
        if len(mono) > 1 and not all(_atom_at_least_one(a, minima) for a in mono):
            return False
    return True


def _atom_nondecreasing(atom: str | FloorDiv, minima: Mapping[str, int]) -> bool:
    return isinstance(atom, str) or nondecreasing(atom.numerator, minima)


def _atom_at_least_one(atom: str | FloorDiv, minima: Mapping[str, int]) -> bool:
    if isinstance(atom, str):
        return True
    env = {s: minima.get(s, 1) for s in D.symbols(atom.numerator)}
    return D.evaluate(atom.numerator, env) >= atom.denominator


def _least_uniform(d: Sym, minima: Mapping[str, int], names: list[str]) -> int | None:
    """The least `t` such that `d >= 1` with every name at `max(minimum, t)`, or None. `d`
    is nondecreasing, so the search may bisect."""

    def ok(t: int) -> bool:
        return D.evaluate(d, {s: max(minima.get(s, 1), t) for s in names}) >= 1

    if ok(1):
        return 1
    high = 2
    while not ok(high):
        if high > SEARCH_LIMIT:
            return None
        high *= 2
    low = high // 2  # ok(low) is false, ok(high) is true
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    return high


def _not_positive(d: Sym, env: Mapping[str, int], span: Span | None) -> NetcShapeError:
    value = D.evaluate(d, env)
    at = ", ".join(f"{k} = {v}" for k, v in env.items())
    if value <= 0:
        return NetcShapeError(f"dimension {_text(d)} is {value} when {at}: a dimension must be positive", span,
                              ["a symbolic size minus another (or a negative multiple) can be zero or less"])
    return NetcShapeError(f"dimension {_text(d)} may shrink as {' or '.join(env)} grow{'s' if len(env) == 1 else ''}"
                          ", so it is zero or less for some sizes", span,
                          ["give the sizes with --set, or build the dim so that it grows with its names"])


def _text(d: Dim) -> str:
    text = str(d)
    return text if len(text) <= 80 else text[:77] + "..."


MIN_SIZES_KEY = "netc.min_sizes"  # model metadata: `T=5,H=7`, the least sizes of symbolic dims


def min_sizes_text(minima: Mapping[str, int]) -> str:
    """The least sizes above 1, as the model's metadata records them (`T=5,H=7`)."""
    return ",".join(f"{k}={v}" for k, v in minima.items() if v > 1)
