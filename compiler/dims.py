"""Symbolic dimensions in a small canonical form of our own.

A dim is a Python `int` or a `Sym`: an integer polynomial over named dims (`N`, `T`) and
floor-division atoms (`(T+1)//2`). Canonical form makes structural equality mean
algebraic equality for everything netc builds (sums, products, floor division by
constants), with no computer-algebra dependency and no `eval`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

Dim = Union[int, "Sym"]


@dataclass(frozen=True, slots=True)
class FloorDiv:
    """An atom `numerator // denominator` that did not simplify."""

    numerator: Sym
    denominator: int

    def __str__(self) -> str:
        num = str(self.numerator)
        if len(self.numerator.terms) > 1 or not num.isidentifier():
            num = f"({num})"
        return f"{num}//{self.denominator}"


Atom = str | FloorDiv
Monomial = tuple[Atom, ...]


def _atom_key(atom: Atom) -> tuple[int, str]:
    return (0, atom) if isinstance(atom, str) else (1, str(atom))


@dataclass(frozen=True, slots=True)
class Sym:
    """An integer polynomial: ((monomial, coefficient), ...) sorted, no zero coefficients."""

    terms: tuple[tuple[Monomial, int], ...]

    def __str__(self) -> str:
        parts = []
        for mono, coeff in self.terms:
            factors = [str(a) for a in mono]
            if not factors:
                body = str(abs(coeff))
            elif abs(coeff) == 1:
                body = "*".join(factors)
            else:
                body = "*".join([str(abs(coeff)), *factors])
            sign = "-" if coeff < 0 else "+"
            parts.append((sign, body))
        text = ("-" if parts[0][0] == "-" else "") + parts[0][1]
        for sign, body in parts[1:]:
            text += f" {sign} {body}"
        return text

    def __repr__(self) -> str:
        return f"Sym({self})"


def _make(terms: dict[Monomial, int]) -> Dim:
    items = tuple(sorted(((m, c) for m, c in terms.items() if c != 0),
                         key=lambda mc: (not mc[0], len(mc[0]), [_atom_key(a) for a in mc[0]])))
    if not items:
        return 0
    if len(items) == 1 and items[0][0] == ():
        return items[0][1]
    return Sym(items)


def _terms(d: Dim) -> dict[Monomial, int]:
    if isinstance(d, int):
        return {(): d} if d else {}
    return dict(d.terms)


def symbol(name: str) -> Sym:
    return Sym((((name,), 1),))


def is_static(d: Dim) -> bool:
    return isinstance(d, int)


def is_dim(v: object) -> bool:
    """An int (not a bool) or a symbolic dim: what an argument giving a dim may be."""
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, Sym)


def add(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    terms = _terms(a)
    for m, c in _terms(b).items():
        terms[m] = terms.get(m, 0) + c
    return _make(terms)


def neg(a: Dim) -> Dim:
    return -a if isinstance(a, int) else _make({m: -c for m, c in a.terms})


def sub(a: Dim, b: Dim) -> Dim:
    return add(a, neg(b))


def mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    terms: dict[Monomial, int] = {}
    for ma, ca in _terms(a).items():
        for mb, cb in _terms(b).items():
            m = tuple(sorted(ma + mb, key=_atom_key))
            terms[m] = terms.get(m, 0) + ca * cb
    return _make(terms)


def floordiv(a: Dim, b: int) -> Dim:
    """`a // b` for a positive integer `b`; exact when every coefficient divides."""
    if b <= 0:
        raise ValueError("dims divide by positive integers only")
    if isinstance(a, int):
        return a // b
    if b == 1:
        return a
    if all(c % b == 0 for _, c in a.terms):
        return _make({m: c // b for m, c in a.terms})
    # (b*k + c) // b == k + c // b for any integer constant c.
    const = dict(a.terms).get((), 0)
    rest = {m: c for m, c in a.terms if m != ()}
    if all(c % b == 0 for c in rest.values()):
        return add(_make({m: c // b for m, c in rest.items()}), const // b)
    return Sym((((FloorDiv(a, b),), 1),))


def exact_div(a: Dim, b: int) -> Dim | None:
    """`a / b` when it is provably whole, else None."""
    if isinstance(a, int):
        return a // b if b and a % b == 0 else None
    if b and all(c % b == 0 for _, c in a.terms):
        return _make({m: c // b for m, c in a.terms})
    return None


def ceildiv(a: Dim, b: int) -> Dim:
    return floordiv(add(a, b - 1), b)


def symbols(d: Dim) -> set[str]:
    if isinstance(d, int):
        return set()
    out: set[str] = set()
    for mono, _ in d.terms:
        for atom in mono:
            out |= {atom} if isinstance(atom, str) else symbols(atom.numerator)
    return out


def substitute(d: Dim, env: Mapping[str, Dim]) -> Dim:
    """Replace named dims by values (ints or other dims) and re-canonicalise."""
    if isinstance(d, int):
        return d
    total: Dim = 0
    for mono, coeff in d.terms:
        term: Dim = coeff
        for atom in mono:
            if isinstance(atom, str):
                value = env.get(atom, symbol(atom))
            else:
                value = floordiv(substitute(atom.numerator, env), atom.denominator)
            term = mul(term, value)
        total = add(total, term)
    return total


def evaluate(d: Dim, env: Mapping[str, int], default: int | None = None) -> int:
    """The integer value of `d`; unknown names take `default` or raise KeyError."""
    if default is not None:
        env = {**{s: default for s in symbols(d)}, **env}
    value = substitute(d, env)
    if not isinstance(value, int):
        raise KeyError(", ".join(sorted(symbols(value))))
    return value


def dim_str(d: Dim) -> str:
    return str(d)


def shape_str(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(dim_str(d) for d in shape) + "]"
