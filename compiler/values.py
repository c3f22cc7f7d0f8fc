"""Compile-time values of the elaborator and the conversion of arguments to the kinds an
op's signature asks for (`int`, `act`, `init`, ...), with located errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netc.compiler import dims as D
from netc.compiler.ir import DType, Init, Value
from netc.compiler.ops.registry import REGISTRY, Arg, OpDef
from netc.dsl import ast
from netc.dsl.errors import NetcError, NetcTypeError, Span, did_you_mean


@dataclass(frozen=True, eq=False)
class BlockFn:
    """A user-defined block, closed over the module that defines it."""

    defn: ast.BlockDef
    module: Any  # program.ModuleInfo

    @property
    def name(self) -> str:
        return self.defn.name


@dataclass(frozen=True, eq=False)
class Builtin:
    """A registry op as a callable value (`dense`, `relu`, ...)."""

    opdef: OpDef

    @property
    def name(self) -> str:
        return self.opdef.name


@dataclass(frozen=True, eq=False)
class Intrinsic:
    """A compile-time function (`range`, `dim`, `zeros`, ...). `fn(elab, span, **args)`."""

    name: str
    signature: tuple[Arg, ...]
    fn: Callable[..., Any]
    doc: str = ""


INIT_SCHEMES = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal",
                "normal", "uniform", "zeros", "ones", "constant", "identity", "orthogonal")


class Word(str):
    """A bare name that is not bound, passed as an argument: `pad=same`, `reset=before`.
    Accepted where an argument lists named options; anywhere else it raises `error`."""

    error: NetcError

    def __new__(cls, text: str, error: NetcError) -> Word:
        word = super().__new__(cls, text)
        word.error = error
        return word


def describe(value: Any) -> str:
    """How a value reads in an error message."""
    if isinstance(value, Value):
        return f"tensor {value.type}"
    if isinstance(value, bool):
        return f"bool {str(value).lower()}"
    if isinstance(value, int):
        # Python refuses to print ints of more than 4300 digits; nobody wants to read them
        return f"int {value}" if value.bit_length() <= 128 else f"int of {value.bit_length()} bits"
    if isinstance(value, float):
        return f"float {value:g}"
    if isinstance(value, str):
        return f'string "{value}"' if len(value) <= 60 else f'string "{value[:57]}..."'
    if isinstance(value, D.Sym):
        return f"symbolic dim {value}"
    if isinstance(value, list):
        return f"list of {len(value)}"
    if isinstance(value, tuple):
        return f"tuple of {len(value)}"
    if value is None:
        return "none"
    if isinstance(value, BlockFn):
        return f"block '{value.name}'"
    if isinstance(value, Builtin):
        return f"layer '{value.name}'"
    if isinstance(value, Intrinsic):
        return f"function '{value.name}'"
    if isinstance(value, DType):
        return f"dtype {value.value}"
    if isinstance(value, Init):
        return f"initialiser {value}"
    if isinstance(getattr(value, "description", None), str):  # shared layers and their parameter groups
        return value.description
    if isinstance(getattr(value, "defn", None), ast.NetworkDef):
        return f"network '{value.defn.name}'"
    return type(value).__name__


def count_text(n: int) -> str:
    """An integer for a message: Python refuses to print ints of more than 4300 digits."""
    return str(n) if n.bit_length() <= 128 else f"about 2**{n.bit_length() - 1}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(value: int | float, fail: Callable[..., NetcTypeError]) -> float:
    """`value` as a float; an int beyond float range, inf or nan is an error, not a crash."""
    try:
        number = float(value)
    except OverflowError:
        raise fail("a number within float range (about ±1.8e308)") from None
    if not math.isfinite(number):
        raise fail("a finite number")
    return number


def array_init(value: list | tuple, fail: Callable[..., NetcTypeError]) -> Init:
    """A (nested) list of numbers as an initialiser holding exactly those values."""
    shape: list[int] = []
    level: Any = value
    while isinstance(level, list | tuple):
        if not level:
            raise fail("a non-empty list of numbers")
        shape.append(len(level))
        level = level[0]
    flat: list[float] = []

    def walk(item: Any, depth: int) -> None:
        if depth == len(shape):
            if isinstance(item, list | tuple) or not (_is_int(item) or isinstance(item, float)):
                raise fail("a list of numbers (nested lists of equal lengths)")
            flat.append(_finite(item, fail))
            return
        if not isinstance(item, list | tuple) or len(item) != shape[depth]:
            raise fail("a list of numbers (nested lists of equal lengths)")
        for sub in item:
            walk(sub, depth + 1)

    walk(value, 0)
    return Init("array", values=tuple(flat), shape=tuple(shape))


def convert(value: Any, arg: Arg, span: Span, fname: str) -> Any:
    """Check `value` against `arg.kind` and return it in the op's preferred form."""

    def fail(expected: str, *hints: str) -> NetcTypeError:
        return NetcTypeError(f"{fname}: '{arg.name}' expects {expected}; got {describe(value)}", span, hints)

    kind = arg.kind
    if isinstance(value, Word):
        if kind == "choice" or (kind in ("str", "any") and arg.choices):
            if value not in arg.choices:
                raise NetcTypeError(f"{fname}: '{arg.name}' expects one of {', '.join(arg.choices)}; "
                                    f"got {value}", span, [did_you_mean(value, arg.choices)])
            return str(value)
        raise value.error
    if kind == "any":
        return value
    if kind == "tensor":
        if not isinstance(value, Value):
            raise fail("a tensor")
        return value
    if kind in ("int", "dim"):
        if kind == "dim" and isinstance(value, D.Sym):
            return value
        if isinstance(value, D.Sym):
            raise fail("an integer known at compile time", f"give {value} a value with `--set`")
        if not _is_int(value):
            raise fail("an integer")
        if arg.positive and value <= 0:
            raise NetcTypeError(f"{fname}: '{arg.name}' must be positive; got {value}", span)
        return value
    if kind == "float":
        if not (_is_int(value) or isinstance(value, float)):
            raise fail("a number")
        return _finite(value, fail)
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if kind == "choice":
        text = value.name if isinstance(value, Builtin | Intrinsic) else value
        if isinstance(value, ast.Name):
            text = value.id
        if not isinstance(text, str) or text not in arg.choices:
            raise fail("one of " + ", ".join(arg.choices))
        return text
    if kind == "ints":
        items = value if isinstance(value, list | tuple) else [value]
        if not items or not all(_is_int(i) for i in items):
            raise fail("an integer or a list of integers")
        if arg.positive and any(i <= 0 for i in items):
            raise NetcTypeError(f"{fname}: '{arg.name}' must be positive; got {value}", span)
        return tuple(items)
    if kind == "act":
        if value is None or value == "none":
            return None
        if isinstance(value, Builtin) and value.opdef.activation:
            return value.name
        if isinstance(value, str):  # act="relu" means act=relu, as for rnn(act=...)
            names = [n for n, d in REGISTRY.ops.items() if d.activation]
            if value in names:
                return value
            raise fail("an activation (relu, sigmoid, tanh, ...) or none", did_you_mean(value, names) or "")
        raise fail("an activation (relu, sigmoid, tanh, ...) or none")
    if kind == "init":
        if isinstance(value, Init):
            return value
        if _is_int(value) or isinstance(value, float):
            return Init("constant", (("value", _finite(value, fail)),))
        if isinstance(value, Intrinsic) and value.name in ("zeros", "ones", "orthogonal"):
            return Init(value.name)
        if isinstance(value, Builtin) and value.name == "identity":  # the op's name, read as the initialiser
            return Init("identity")
        if isinstance(value, list | tuple):
            return array_init(value, fail)
        raise fail("an initialiser (" + ", ".join(INIT_SCHEMES) + "), a number, or a list of numbers")
    if kind == "dtype":
        if not isinstance(value, DType):
            raise fail("a dtype (f32, f64, i64, ...)")
        return value
    raise AssertionError(f"unknown argument kind {kind}")
