#!/usr/bin/env python3
"""Fuzz netc's front end: no input may crash it.

Each execution feeds one `.net` text to `netc.check_file` and, when that succeeds, to
`netc.compile_file` (with tiny resource limits, so a huge layer is a quick `NetcLimitError`)
and to the ONNX checker. Every outcome must be success or a `NetcError` whose rendering
works; anything else is a finding:

  crash          any other exception (a bug: the CLI would print "internal error")
  invalid-model  compile succeeded but `onnx.checker` rejects the model
  bad-span       an error located outside the file (line or column past the end)
  hang           one execution took longer than --timeout seconds

Inputs come from three sources: --system-share of them (default 0.2) are system cases,
the rest half generated, half mutated:
  generated  random but plausible programs: networks with inputs, bindings, pipelines of
             the registry's layers with arguments of (mostly) the right kinds, blocks,
             compile-time for/if, slicing, arithmetic and constants
  mutated    every examples/**/*.net file with 1-4 byte- or token-level mutations
             (deletions, duplications, swaps, random tokens, invalid UTF-8)
  system     what a user hands netc besides text (tools/fuzz_system.py): weight and input
             files with lying headers and zip members, -o targets of every kind (FIFOs,
             folders, symlinks, devices, the inputs), accepted programs run on onnxruntime
             and the reference with hostile sizes and integers, and numeric options. A
             crash here is what the CLI reports as exit 3; an output written over an input,
             a FIFO or a device is a crash too.

Input i of seed S is a function of (S, i) and the examples alone (snapshotted when the run
starts), so a finding is reproduced by its index while examples/ is unchanged — and always
by the saved `original.net`.
Findings are minimised (lines, then tokens, then bytes) and saved, one folder per
distinct signature, under --out (default: netc-fuzz-findings/ in the temp folder):
`input.net` (minimal), `original.net`, `report.txt` (traceback, how to replay).

    python tools/fuzz.py --count 100000 [--seed S] [--jobs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:  # fuzz_system.py, beside this file, however this is loaded
    sys.path.insert(0, str(ROOT / "tools"))
EXAMPLES = ROOT / "examples"
FUZZ_NAME = "__fuzz__.net"


# ============================================================================ choices


class Chooser(Protocol):
    """Where the generator gets its randomness: `random.Random` here, Hypothesis' `draw` in
    the test suite (so that failures shrink)."""

    def choice(self, items: Sequence[Any]) -> Any: ...

    def randint(self, low: int, high: int) -> int: ...

    def chance(self, p: float) -> bool: ...


class RandomChooser:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def choice(self, items: Sequence[Any]) -> Any:
        return items[self.rng.randrange(len(items))]

    def randint(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


# ============================================================================ the generator
#
# A program is "clean" (every choice plausible: known names, positive sizes, arguments of
# the right kinds) or "noisy", where each choice is wrong with a small probability. Clean
# programs reach the shape rules, the parameter code and the lowering; noisy ones the
# error paths of every stage.

ACTIVATIONS = ("relu", "sigmoid", "tanh", "softplus", "swish", "gelu", "elu", "leaky_relu", "identity", "none")
FLOAT_DTYPES = ("f32", "f32", "f32", "f64", "f16")
DTYPES = ("f32", "f64", "f16", "i64", "i32", "i8", "u8", "bool", "bf16")
INITS = ("glorot", "he", "zeros", "ones", "glorot_uniform", "he_normal", "lecun_normal", "normal(0.1)",
         "uniform(-0.1, 0.1)", "constant(0.5)", "1.0", "-2.0")
STRINGS = ('"fc"', '"a"', '"same"', '"valid"', '"causal"', '"tanh"', '"before"', '"after"', '""', '"a.b"',
           '"x y"', '"\\n"', '"auto"', '"scan"', '"native"')
IMPORTS = ('"blocks/resnet.net"', '"nothere.net"', '"../x.net"', '"/abs.net"', f'"{FUZZ_NAME}"',
           '"blocks/../blocks/resnet.net"', '"mnist_mlp.net"')
COMMON_SHAPES = ("N, 8", "N, 3, 8, 8", "T, N, 8", "N, 4", "2, 4", "N, T, 8", "N, 1, 12, 12", "4", "N, 2, 6")
GOOD_DIMS = ("N", "N", "T", "4", "8", "3", "1", "2", "6")
BAD_DIMS = ("0", "-1", "2.5", "\"a\"", "10**20", "T//0", "2*N", "T/2", "N + 1")
CONSTS = ("4", "16", "2 * 8", "[1, 2]", "0.5", "true", '"s"')
BOGUS_NAMES = ("foo", "denes", "rellu", "x2", "N", "T", "input_", "acts", "units", "axis", "C9")
GOOD_INTS = ("1", "2", "3", "4", "8", "2", "4", "16", "2 * 3", "8 // 2", "8 / 2", "5")
BAD_INTS = ("0", "-1", "-4", "10**12", "2**40", "1000000", "3.5", "true", '"4"', "none", "N", "[2]")
FLOATS = ("0.5", "1e-5", "0.1", "1", "-2.0", "0.9", "0.0", "2")
# Values at the edges of Python's numbers and of the language: overflow, empty ranges,
# zero steps, enormous exponents.
EDGE = ("10**400", "int(1e308 * 10)", "len(range(10**20))", "[1, 2, 3][::0][0]", "2**63", "-2**63", "1e-320",
        "max([])", "min(1)", "int(-0.0)", "float(10**400)", "[[1]]", "(1, 2)", "range(-5)", "zip()",
        "enumerate(3)", "len(\"\")", "-(2**62) * 4", "1e308 * 10", "0.0 / 1", "[] + []", "\"a\" * 3",
        "[1] * 3", "10**18 // 3", "7 % -2", "-7 // 2", "int(1e20)", "float(\"1\")", "len([1] * 10**7)")
BAD_FLOATS = ("1e308", "true", '"0.5"', "none", "[1.0]", "10**400")


def _ops() -> dict[str, tuple]:
    """Public registry ops and their signatures (read once, in a stable order)."""
    if "ops" not in _CACHE:
        from netc.compiler.ops import REGISTRY

        _CACHE["ops"] = {name: op.signature for name, op in sorted(REGISTRY.ops.items()) if not op.internal}
    return _CACHE["ops"]


def _intrinsics() -> list[str]:
    if "intrinsics" not in _CACHE:
        from netc.compiler.intrinsics import INTRINSICS
        from netc.compiler.values import Intrinsic

        _CACHE["intrinsics"] = sorted(name for name, v in INTRINSICS.items() if isinstance(v, Intrinsic))
    return _CACHE["intrinsics"]


_CACHE: dict[str, Any] = {}


@dataclasses.dataclass
class _Ctx:
    c: Chooser
    noise: float
    tensors: list[str]
    ints: list[str]
    blocks: list[tuple[str, int]]  # name, number of extra parameters
    depth: int = 0
    fresh: int = 0
    dims: list[str] = dataclasses.field(default_factory=list)  # symbolic dims bound by the inputs

    def fill_shape(self) -> str:
        """Dims for zeros(...)/ones(...): static, or symbolic ones that are in scope."""
        pool = ("4", "2", "3", *self.dims) if not self.bad() else ("N", "0", "T", "-2")
        return ", ".join(self.c.choice(pool) for _ in range(self.c.randint(1, 3)))

    def name(self, prefix: str = "h") -> str:
        self.fresh += 1
        return f"{prefix}{self.fresh}"

    def bad(self, scale: float = 1.0) -> bool:
        """Make a mistake here? Never in a clean program."""
        return self.noise > 0 and self.c.chance(self.noise * scale)


def _int_literal(ctx: _Ctx) -> str:
    if ctx.bad(0.3):
        return ctx.c.choice(EDGE)
    return ctx.c.choice(BAD_INTS if ctx.bad() else GOOD_INTS)


def _int_expr(ctx: _Ctx) -> str:
    c = ctx.c
    roll = c.randint(0, 9)
    if roll < 6 or not ctx.tensors:
        return _int_literal(ctx)
    if roll < 8 and ctx.ints:
        return c.choice(ctx.ints)
    if roll < 9:
        axis = c.choice(("5", "-3", "2")) if ctx.bad() else c.choice(("-1", "0", "1"))
        return f"dim({c.choice(ctx.tensors)}, {axis})"
    return f"{c.choice(('channels', 'rank'))}({c.choice(ctx.tensors)})"


def _scalar(ctx: _Ctx) -> str:
    return ctx.c.choice(("0.5", "2", "1", "1e-3", "-1.5", "3", "0", "2.0") + (("1e30", "true", '"a"') if ctx.bad() else ()))


def _arg_value(ctx: _Ctx, kind: str, choices: tuple[str, ...]) -> str:
    """A value of the argument kind `kind` — in a noisy program, now and then another kind."""
    c = ctx.c
    if ctx.bad(0.5):
        kind = c.choice(("int", "float", "bool", "str", "tensor", "act", "init", "dtype", "list", "name"))
    if kind == "tensor":
        return _tensor_expr(ctx, shallow=True)
    if kind in ("int", "dim"):
        return _int_expr(ctx)
    if kind == "float":
        if ctx.bad(0.3):
            return c.choice(EDGE)
        return c.choice(BAD_FLOATS if ctx.bad() else FLOATS)
    if kind == "bool":
        return c.choice(("true", "false"))
    if kind == "str":
        return c.choice(STRINGS)
    if kind == "choice":
        return c.choice(STRINGS) if ctx.bad() or not choices else f'"{c.choice(choices)}"'
    if kind == "ints":
        if c.chance(0.6):
            return _int_literal(ctx)
        return "[" + ", ".join(_int_literal(ctx) for _ in range(c.randint(1, 2))) + "]"
    if kind == "act":
        return c.choice(ACTIVATIONS)
    if kind == "init":
        return c.choice(INITS)
    if kind == "dtype":
        return c.choice(DTYPES if ctx.bad() else FLOAT_DTYPES)
    if kind == "list":
        return "[" + ", ".join(_int_literal(ctx) for _ in range(c.randint(0, 4))) + "]"
    if kind == "name":
        return c.choice(BOGUS_NAMES)
    # any: lists of dims for reshape/transpose, axes, "same" padding, tensors for concat
    roll = c.randint(0, 5)
    if roll == 0 and ctx.tensors:
        return c.choice(ctx.tensors)
    if roll == 1:
        return "[" + ", ".join(_int_expr(ctx) for _ in range(c.randint(1, 4))) + "]"
    if roll == 2:
        return c.choice(("none", '"same"', '"valid"', '"causal"', "1", "[1, 1]", "-1", "[0, 1]", "[1, 0]"))
    return _int_expr(ctx)


def _call(ctx: _Ctx, op: str, signature: tuple, piped: bool) -> str:
    """`op(args)`; when piped, the first tensor argument is left out (`x -> op(args)`)."""
    c = ctx.c
    args = list(signature)
    if piped and args and args[0].kind in ("tensor", "any"):
        args = args[1:]
    positional: list[str] = []
    keywords: list[str] = []
    for i, arg in enumerate(args):
        if arg.kind == "kwargs":
            continue
        if getattr(arg, "variadic", False):
            positional += [_tensor_expr(ctx, shallow=True) for _ in range(c.randint(1, 3))]
            continue
        required = getattr(arg, "required", False)
        if not required and not c.chance(0.3):
            continue
        if required and ctx.bad(0.3):
            continue  # a missing argument
        value = _arg_value(ctx, arg.kind, tuple(getattr(arg, "choices", ()) or ()))
        if required and i == len(positional) and not keywords and c.chance(0.8):
            positional.append(value)
        else:
            keywords.append(f"{arg.name}={value}")
    if ctx.bad(0.5):  # an argument that does not exist, or one too many
        keywords.append(f"{c.choice(BOGUS_NAMES)}={_int_literal(ctx)}")
    if ctx.bad(0.3):
        positional.append(_int_literal(ctx))
    if c.chance(0.05) and "name=" not in " ".join(keywords):
        bad_name = c.choice(STRINGS + EDGE[:6] + ("3", "none", "true"))
        keywords.append(f"name={bad_name if ctx.bad(3) else chr(34) + ctx.name('layer') + chr(34)}")
    inner = ", ".join(positional + keywords)
    if piped and not inner and c.chance(0.5):
        return op
    return f"{op}({inner})"


def _layer(ctx: _Ctx, piped: bool) -> str:
    c = ctx.c
    ops = _ops()
    if ctx.bad(0.5):
        return c.choice(BOGUS_NAMES)
    roll = c.randint(0, 19)
    if roll <= 2 and ctx.blocks:
        name, extra = c.choice(ctx.blocks)
        count = c.randint(0, 3) if ctx.bad() else extra
        args = [_int_expr(ctx) for _ in range(count)]
        return f"{name}({', '.join(args)})" if args or c.chance(0.5) else name
    if roll == 3 and ctx.noise:
        name = c.choice(_intrinsics())
        return f"{name}({', '.join(_arg_value(ctx, 'any', ()) for _ in range(c.randint(0, 2)))})"
    op = c.choice(list(ops))
    return _call(ctx, op, ops[op], piped)


def _tensor_expr(ctx: _Ctx, shallow: bool = False) -> str:
    c = ctx.c
    if not ctx.tensors:
        return f"{c.choice(('zeros', 'ones'))}({ctx.fill_shape()})"
    base = c.choice(ctx.tensors)
    if shallow or ctx.depth > 3:
        return base if c.chance(0.8) else f"({base} * {_scalar(ctx)})"
    ctx.depth += 1
    try:
        roll = c.randint(0, 11)
        if roll <= 4:  # a pipeline
            steps = [_layer(ctx, piped=True) for _ in range(c.randint(1, 4))]
            return " -> ".join([base, *steps])
        if roll == 5:
            other = c.choice(ctx.tensors)
            return f"{base} {c.choice(('+', '-', '*', '/', '@', '**'))} {other}"
        if roll == 6:
            return f"{base} {c.choice(('+', '-', '*', '/'))} {_scalar(ctx)}"
        if roll == 7:
            return f"{base}[{_subscript(ctx)}]"
        if roll == 8:
            call = _layer(ctx, piped=False)
            return call.replace("(", f"({base}, ", 1) if "(" in call else f"{call}({base})"
        if roll == 9:
            axis = c.choice(("-1", "0", "1", "2")) if not ctx.bad() else c.choice(("7", "-9", '"x"'))
            return f"concat({base}, {c.choice(ctx.tensors)}, axis={axis})"
        if roll == 10:
            op = c.choice(("==", "!=", "<", ">=")) if not ctx.bad() else "="
            cond = f"{_int_expr(ctx)} {op} {_int_expr(ctx)}"
            return f"if {cond} {{ {base} }} else {{ {_tensor_expr(ctx)} }}"
        return f"-{base}" if c.chance(0.5) else f"({_tensor_expr(ctx)})"
    finally:
        ctx.depth -= 1


def _subscript(ctx: _Ctx) -> str:
    c = ctx.c
    parts = []
    for _ in range(c.randint(1, 3)):
        roll = c.randint(0, 5)
        if roll == 0:
            parts.append(":")
        elif roll == 1:
            parts.append(c.choice(("-1", "0", "1", "5", "-10")))
        elif roll == 2:
            parts.append(f"{c.choice(('', '1', '-2', '0'))}:{c.choice(('', '3', '-1', '2'))}")
        elif roll == 3:
            parts.append(f"::{c.choice(('2', '-1', '1') + (('0',) if ctx.bad() else ()))}")
        elif roll == 4:
            parts.append(f"{c.choice(('', '1'))}:{c.choice(('', '-1'))}:{c.choice(('1', '2', '-1'))}")
        else:
            parts.append(_int_expr(ctx))
    return ", ".join(parts)


def _statements(ctx: _Ctx, count: int, indent: str, in_block: bool) -> list[str]:
    c = ctx.c
    lines: list[str] = []
    for _ in range(count):
        roll = c.randint(0, 15)
        if roll <= 8:
            name = ctx.name()
            lines.append(f"{indent}{name} = {_tensor_expr(ctx)}")
            ctx.tensors.append(name)
        elif roll == 9:
            name = ctx.name("k")
            lines.append(f"{indent}{name} = {_int_expr(ctx)}")
            ctx.ints.append(name)
        elif roll == 10 and ctx.depth < 2 and ctx.tensors:
            var = ctx.name("i")
            target = c.choice(ctx.tensors)
            iterable = c.choice(("range(3)", "range(2)", "[1, 2]", "range(0)", "range(1, 4)", "enumerate([4, 8])",
                                 "zip([1], [2])") + (("range(10**4)", "[]", "x", "3") if ctx.bad() else ()))
            saved = (list(ctx.tensors), list(ctx.ints))
            if iterable.startswith(("enumerate", "zip")):
                second = ctx.name("j")
                header = f"for {var}, {second} in {iterable}"
                ctx.ints += [var, second]
            else:
                header = f"for {var} in {iterable}"
                ctx.ints.append(var)
            ctx.depth += 1
            body = _statements(ctx, c.randint(0, 2), indent + "  ", in_block)
            ctx.depth -= 1
            ctx.tensors, ctx.ints = saved  # names bound in the body may not exist after it
            lines += [f"{indent}{header} {{", f"{indent}  {target} = {target} -> relu", *body, f"{indent}}}"]
        elif roll == 11 and ctx.depth < 2:
            cond = c.choice(("true", "false", f"{_int_expr(ctx)} > 2", "not false", f"{_int_expr(ctx)} == 4 and true")
                            + (("x", "N > 2", "1") if ctx.bad() else ()))
            saved = (list(ctx.tensors), list(ctx.ints))
            ctx.depth += 1
            then = _statements(ctx, c.randint(1, 2), indent + "  ", in_block)
            ctx.tensors, ctx.ints = list(saved[0]), list(saved[1])
            orelse = _statements(ctx, c.randint(0, 2), indent + "  ", in_block)
            ctx.depth -= 1
            ctx.tensors, ctx.ints = saved
            lines += [f"{indent}if {cond} {{", *then, f"{indent}}} else {{", *orelse, f"{indent}}}"]
        elif roll == 12 and ctx.tensors:
            a, b = ctx.name(), ctx.name()
            t = c.choice(ctx.tensors)
            source = c.choice((f"split({t}, 2)", f"({t}, {c.choice(ctx.tensors)})") + ((f"shape({t})", t)
                              if ctx.bad() else ()))
            lines.append(f"{indent}{a}, {b} = {source}")
            ctx.tensors += [a, b]
        elif roll == 13:
            name = ctx.name()
            lines.append(f"{indent}{name} = {c.choice(('zeros', 'ones'))}({ctx.fill_shape()})")
            ctx.tensors.append(name)
        elif roll == 14 and not in_block and ctx.bad(3):
            lines.append(f"{indent}input {ctx.name('in')}: {c.choice(DTYPES)}[{_shape(ctx)}]")
        elif ctx.bad(3):
            lines.append(f"{indent}{ctx.name()} = {c.choice(BOGUS_NAMES)}")
    return lines


def _shape(ctx: _Ctx) -> str:
    c = ctx.c
    rank = c.randint(6, 10) if ctx.bad(0.5) else c.randint(0, 4)
    return ", ".join(c.choice(BAD_DIMS) if ctx.bad(0.5) else c.choice(GOOD_DIMS) for _ in range(rank))


def generate_program(c: Chooser) -> str:
    """A random `.net` program: clean half the time, else with a few mistakes."""
    noise = 0.0 if c.chance(0.5) else c.choice((0.02, 0.05, 0.1))
    lines: list[str] = []
    ctx = _Ctx(c, noise, [], [], [])
    if ctx.bad(2):
        lines.append(f"import {c.choice(IMPORTS)}")
    for _ in range(c.randint(0, 2)):
        name = f"C{ctx.fresh}"
        ctx.fresh += 1
        value = c.choice(CONSTS) if ctx.bad(5) else c.choice(GOOD_INTS)
        lines.append(f"const {name} = {value}")
        ctx.ints.append(name)
    for b in range(c.randint(0, 2)):
        name = f"blk{b}"
        extra = c.randint(0, 2)
        params = ["x"] + [f"p{i}: {c.choice(('int', 'int', 'any') + (('float', 'act', 'list') if ctx.bad(3) else ()))}"
                          + (f" = {_int_literal(ctx)}" if c.chance(0.5) else "") for i in range(extra)]
        inner = _Ctx(c, noise, ["x"], [*ctx.ints, *(f"p{i}" for i in range(extra))],
                     [*ctx.blocks, *([(name, extra)] if ctx.bad(3) else [])], fresh=ctx.fresh)
        body = _statements(inner, c.randint(0, 3), "  ", in_block=True)
        ctx.fresh = inner.fresh
        ret = _tensor_expr(inner)
        if ctx.bad(2):
            ret += f", {c.choice(inner.tensors)}"
        lines += [f"block {name}({', '.join(params)}) {{", *body, f"  return {ret}", "}"]
        ctx.blocks.append((name, extra))
    for n in range(2 if c.chance(0.1) else 1):
        params = ""
        ints = list(ctx.ints)
        if c.chance(0.3):
            params = f"(width: int = {_int_literal(ctx)}, act = relu)"
            ctx.ints.append("width")
        lines.append(f"network Net{n}{params} {{")
        ctx.tensors = []
        ctx.dims = []
        for i in range(0 if ctx.bad() else c.randint(1, 2)):
            name = "x" if i == 0 else f"x{i}"
            dtype = c.choice(DTYPES) if ctx.bad(3) else c.choice(FLOAT_DTYPES)
            shape = _shape(ctx) if c.chance(0.3) else c.choice(COMMON_SHAPES)
            lines.append(f"  input {name}: {dtype}[{shape}]")
            ctx.tensors.append(name)
            ctx.dims += [d for d in ("N", "T") if re.search(rf"\b{d}\b", shape) and d not in ctx.dims]
        lines += _statements(ctx, c.randint(1, 6), "  ", in_block=False)
        for o in range(0 if ctx.bad() else c.randint(1, 2)):
            roll = c.randint(0, 19)
            if roll == 0 and ctx.tensors:  # an output that is an input, or another output
                lines.append(f"  output {c.choice(ctx.tensors)}")
            elif roll == 1 and ctx.tensors:
                lines.append(f"  output y{o} = {c.choice(ctx.tensors)}")
            else:
                lines.append(f"  output y{o} = {_tensor_expr(ctx)}")
        lines.append("}")
        ctx.ints = ints
    return "\n".join(lines) + "\n"


# ============================================================================ mutation

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|->|\*\*|//|'
                    r"==|!=|<=|>=|#[^\n]*|\s+|.", re.S)
TOKENS = ("(", ")", "[", "]", "{", "}", ",", ":", ";", "=", "==", "->", "+", "-", "*", "/", "//", "**", "@",
          "%", "<", ">", "input", "output", "network", "block", "return", "for", "in", "if", "else", "const",
          "import", "and", "or", "not", "true", "false", "none", "x", "h", "N", "T", "0", "1", "-1", "3.5",
          "1e999", "99999999999999999999999", "10**12", '"s"', '"\\q"', '"', "'", "#", "\n", "\t", "$", "é",
          "\x00", "\ufeff", "\r", "\f", "dense", "relu", "conv2d", "concat", "recur", "range", "dim", "zeros",
          "f32", "i64", "bf16", "f32[N, 4]", "x[:, -1]", "x -> dense(4)", "((((((((", "))))))))")


def mutate(c: Chooser, data: bytes) -> bytes:
    """1-4 byte- or token-level mutations of `data`."""
    for _ in range(c.randint(1, 4)):
        if c.chance(0.5):
            data = _mutate_tokens(c, data)
        else:
            data = _mutate_bytes(c, data)
    return data


def _span(c: Chooser, n: int, max_len: int = 40) -> tuple[int, int]:
    if n == 0:
        return 0, 0
    start = c.randint(0, n - 1)
    return start, min(n, start + c.randint(1, max_len))


def _mutate_bytes(c: Chooser, data: bytes) -> bytes:
    n = len(data)
    a, b = _span(c, n)
    roll = c.randint(0, 5)
    if roll == 0:  # delete
        return data[:a] + data[b:]
    if roll == 1:  # duplicate
        return data[:b] + data[a:b] + data[b:]
    if roll == 2:  # swap with another range
        x, y = sorted((_span(c, n), (a, b)))
        if x[1] > y[0]:
            return data
        return data[:x[0]] + data[y[0]:y[1]] + data[x[1]:y[0]] + data[x[0]:x[1]] + data[y[1]:]
    if roll == 3:  # one random byte, any value (invalid UTF-8 too)
        return data[:a] + bytes([c.randint(0, 255)]) + data[a + 1:]
    if roll == 4:  # insert random printable bytes
        junk = bytes(c.choice(b"(){}[],:;=+-*/@<>#\"'\\ \n\t0123456789abcxyzNT._") for _ in range(c.randint(1, 6)))
        return data[:a] + junk + data[a:]
    return data[:a]  # truncate


def _mutate_tokens(c: Chooser, data: bytes) -> bytes:
    text = data.decode("utf-8", errors="surrogateescape")
    tokens = _TOKEN.findall(text)
    if not tokens:
        return data
    n = len(tokens)
    i = c.randint(0, n - 1)
    roll = c.randint(0, 4)
    if roll == 0:
        del tokens[i]
    elif roll == 1:
        tokens.insert(i, tokens[i])
    elif roll == 2:
        j = c.randint(0, n - 1)
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif roll == 3:
        tokens[i] = c.choice(TOKENS)
    else:
        tokens.insert(i, c.choice(TOKENS))
    return "".join(tokens).encode("utf-8", errors="surrogateescape")


def example_files() -> list[Path]:
    return sorted(EXAMPLES.rglob("*.net"))


# ============================================================================ the oracle


class Timeout(BaseException):
    """One execution ran too long (a BaseException, so that no `except Exception` eats it)."""


@dataclasses.dataclass
class Outcome:
    kind: str  # ok | error | crash | invalid-model | bad-span | hang
    signature: str = ""
    detail: str = ""


def fuzz_limits():
    from netc.compiler.limits import DEFAULT_LIMITS

    small = {"max_param_bytes": 4 * 2**20, "max_ops": 2_000, "max_depth": 16, "max_import_depth": 8,
             "max_loop_iterations": 2_000, "max_tensor_elements": 2**24}
    known = {f.name for f in dataclasses.fields(DEFAULT_LIMITS)}
    return dataclasses.replace(DEFAULT_LIMITS, **{k: v for k, v in small.items() if k in known})


def _frame_signature(tb) -> str:
    """The innermost frame in netc's own code: where the bug is."""
    frames = traceback.extract_tb(tb)
    outside = ("/tools/", "/tests/", "/site-packages/", "/.venv/")
    mine = [f for f in frames if f.filename.startswith(str(ROOT)) and not any(o in f.filename for o in outside)]
    mine = mine or frames
    f = mine[-1]
    return f"{Path(f.filename).relative_to(ROOT) if str(ROOT) in f.filename else f.filename}:{f.lineno}"


def _span_ok(err, path: Path, text: str) -> bool:
    span = err.span
    if span is None or Path(span.file).resolve() != path.resolve():
        return True  # spans in other files (imports) are checked when those files are fuzzed
    lines = text.split("\n")
    if not 1 <= span.line <= len(lines):
        return False
    return 1 <= span.col <= len(lines[span.line - 1]) + 1


def check_text(data: bytes, path: Path, compile_too: bool = True, onnx_check: bool = True) -> Outcome:
    """Run the front end on `data` written to `path`; classify what happened."""
    import netc
    from netc.dsl.errors import NetcError

    path.write_bytes(data)
    limits = fuzz_limits()
    try:
        try:
            graphs = netc.check_file(path, limits=limits)
            if compile_too:
                program = netc.load(path, limits=limits)
                for name in list(program.networks)[:2]:
                    compiled = netc.compile_file(path, network=name, limits=limits)
                    if onnx_check:
                        import onnx

                        try:
                            onnx.checker.check_model(compiled.model)
                        except onnx.checker.ValidationError as err:
                            first = str(err).strip().splitlines()[0] if str(err).strip() else "?"
                            return Outcome("invalid-model", "onnx.checker: " + re.sub(r"'[^']*'", "'…'", first)[:120],
                                           str(err))
            del graphs
            return Outcome("ok")
        except NetcError as err:
            err.render()  # the renderer must cope with whatever the error points at
            # read as the parser reads files: universal newlines, no byte-order mark
            text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if not _span_ok(err, path, text):
                return Outcome("bad-span", f"{type(err).__name__}: {_strip(err.message)}",
                               f"{err.span}: {err.message}")
            return Outcome("error")
    except Timeout:
        return Outcome("hang", "hang", "")
    except Exception as err:  # every other exception is the finding
        return Outcome("crash", f"{type(err).__name__} at {_frame_signature(err.__traceback__)}",
                       traceback.format_exc())


def check_system(data: bytes, folder: Path) -> Outcome:
    """Run one system case (`system:KIND:SEED:INDEX`); classify what happened."""
    from fuzz_system import run_case

    from netc.dsl.errors import NetcError

    _, kind, seed, index = data.decode().split(":")
    try:
        try:
            run_case(kind, int(seed), int(index), folder)
            return Outcome("ok")
        except NetcError as err:
            err.render()
            return Outcome("error")
    except Timeout:
        return Outcome("hang", "hang", "")
    except Exception as err:  # exit 3 at the command line, or an oracle violated (an assertion)
        detail = traceback.format_exc()
        what = f"{type(err).__name__}: {_strip(str(err))}" if isinstance(err, AssertionError) else type(err).__name__
        return Outcome("crash", f"{kind}: {what} at {_frame_signature(err.__traceback__)}", detail)


def _strip(message: str) -> str:
    return re.sub(r"\d+", "#", re.sub(r"'[^']*'", "'…'", message))[:80]


@contextlib.contextmanager
def time_limit(seconds: float):
    def fire(signum, frame):
        raise Timeout()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ============================================================================ the run

_STATE: dict[str, Any] = {}


def _init_worker(workdir: str, timeout: float, memory_mb: int, system_share: float = 0.0) -> None:
    import netc  # noqa: F401  (import once, outside the timed region)

    if memory_mb:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = _vm_bytes() + memory_mb * 2**20
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    # The first call (in the main process) snapshots examples/, so that every worker —
    # also one started late in a long run — mutates the same files while others edit the
    # originals. Each process then fuzzes in its own copy of the snapshot: imports of the
    # examples resolve, and no two workers write the same file.
    snapshot = Path(workdir) / "examples"
    if not snapshot.exists():
        if EXAMPLES.is_dir():
            shutil.copytree(EXAMPLES, snapshot)
        snapshot.mkdir(parents=True, exist_ok=True)
    own = Path(workdir) / f"w{os.getpid()}"
    shutil.copytree(snapshot, own, dirs_exist_ok=True)
    files = sorted(snapshot.rglob("*.net"))
    _STATE.update(workdir=own, timeout=timeout, system_share=system_share,
                  examples=[p.relative_to(snapshot) for p in files],
                  sources=[p.read_bytes() for p in files])


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def make_input(seed: int, index: int) -> tuple[str, bytes, Path]:
    """Input `index` of run `seed`: (source kind, bytes, folder it lives in)."""
    rng = random.Random(f"{seed}:{index}")
    c = RandomChooser(rng)
    workdir: Path = _STATE["workdir"]
    if random.Random(f"system:{seed}:{index}").random() < _STATE.get("system_share", 0.0):
        from fuzz_system import KINDS, describe

        return "system", describe(KINDS[index % len(KINDS)], seed, index), workdir
    if rng.random() < 0.5 or not _STATE["examples"]:
        return "generated", generate_program(c).encode(), workdir
    k = rng.randrange(len(_STATE["examples"]))
    return "mutated", mutate(c, _STATE["sources"][k]), workdir / _STATE["examples"][k].parent


def run_index(args: tuple[int, int]) -> tuple[int, str, Outcome]:
    seed, index = args
    source, data, folder = make_input(seed, index)
    try:
        with time_limit(_STATE["timeout"]):
            outcome = check_system(data, folder) if source == "system" else check_text(data, folder / FUZZ_NAME)
    except Timeout:
        outcome = Outcome("hang", "hang", "")
    except MemoryError:
        outcome = Outcome("crash", "MemoryError", traceback.format_exc())
    return index, source, outcome


def minimise(data: bytes, still_fails: Callable[[bytes], bool], budget: int = 600) -> bytes:
    """Delete lines, then ever smaller runs of bytes, while the same finding persists."""
    calls = 0

    def test(candidate: bytes) -> bool:
        nonlocal calls
        calls += 1
        return still_fails(candidate)

    lines = data.split(b"\n")
    i = 0
    while i < len(lines) and calls < budget:
        candidate = lines[:i] + lines[i + 1:]
        if test(b"\n".join(candidate)):
            lines = candidate
        else:
            i += 1
    data = b"\n".join(lines)
    # then runs of tokens, then runs of bytes, halving the run length each round
    tokens = [t.encode("utf-8", errors="surrogateescape")
              for t in _TOKEN.findall(data.decode("utf-8", errors="surrogateescape"))]
    tokens = _delete_runs(tokens, lambda ts: test(b"".join(ts)), lambda: calls < budget)
    data = b"".join(tokens)
    return bytes(_delete_runs(list(data), lambda bs: test(bytes(bs)), lambda: calls < budget))


def _delete_runs(items: list, ok: Callable[[list], bool], more: Callable[[], bool]) -> list:
    chunk = max(len(items) // 4, 1)
    while chunk >= 1 and more():
        i = 0
        while i < len(items) and more():
            candidate = items[:i] + items[i + chunk:]
            if candidate and ok(candidate):
                items = candidate
            else:
                i += chunk
        chunk //= 2
    return items


def _save(out: Path, signature: str, outcome: Outcome, seed: int, index: int, source: str,
          original: bytes, minimal: bytes, count: int) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", signature)[:60].strip("_")
    folder = out / f"{outcome.kind}-{slug}-{hashlib.sha1(signature.encode()).hexdigest()[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "input.net").write_bytes(minimal)
    (folder / "original.net").write_bytes(original)
    (folder / "report.txt").write_text(
        f"kind: {outcome.kind}\nsignature: {signature}\noccurrences: {count}\n"
        f"first: seed {seed}, index {index} ({source})\n"
        f"reproduce: python tools/fuzz.py --seed {seed} --replay {index}\n\n{outcome.detail}\n")
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="executions (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    parser.add_argument("--start", type=int, default=0, help="first input index (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per execution (default 20)")
    parser.add_argument("--memory-mb", type=int, default=3072,
                        help="address space each worker may add, in MiB (default 3072; 0: no limit)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "netc-fuzz-findings",
                        help="where findings go (default: netc-fuzz-findings/ in the temp folder)")
    parser.add_argument("--replay", type=int, metavar="INDEX", help="run one input and print what happened")
    parser.add_argument("--no-minimise", action="store_true", help="save findings as found")
    parser.add_argument("--system-share", type=float, default=0.2,
                        help="share of system cases: files, outputs, run time, options (default 0.2)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="netc-fuzz-"))
    try:
        _init_worker(str(work), args.timeout, 0, args.system_share)
        if args.replay is not None:
            index, source, outcome = run_index((args.seed, args.replay))
            _, data, _ = make_input(args.seed, index)
            print(f"--- input {index} ({source}) ---\n{data.decode('utf-8', errors='replace')}")
            print(f"--- outcome: {outcome.kind} {outcome.signature}\n{outcome.detail}")
            return 0 if outcome.kind in ("ok", "error") else 1
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    start = time.perf_counter()
    kinds: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    findings: dict[str, tuple[int, str, Outcome, int]] = {}  # signature -> first index, source, outcome, count
    tasks = [(args.seed, i) for i in range(args.start, args.start + args.count)]
    ctx = multiprocessing.get_context("fork")
    done = 0
    with ctx.Pool(args.jobs, _init_worker, (str(work), args.timeout, args.memory_mb, args.system_share),
                  maxtasksperchild=2000) as pool:
        for index, source, outcome in pool.imap_unordered(run_index, tasks, chunksize=16):
            done += 1
            kinds[outcome.kind] += 1
            sources[source] += 1
            if outcome.kind not in ("ok", "error"):
                key = f"{outcome.kind}: {outcome.signature}"
                first = findings.get(key)
                if first is None or index < first[0]:
                    findings[key] = (index, source, outcome, (first[3] if first else 0) + 1)
                else:
                    findings[key] = (*first[:3], first[3] + 1)
                if first is None:
                    print(f"[{done}] new {key} (input {index}, {source})", flush=True)
            if done % 5000 == 0:
                rate = done / (time.perf_counter() - start)
                print(f"[{done}/{len(tasks)}] {dict(kinds)} {rate:.0f}/s", flush=True)
    elapsed = time.perf_counter() - start

    saved = []
    if findings:
        args.out.mkdir(parents=True, exist_ok=True)
    for key, (index, source, outcome, count) in sorted(findings.items()):
        _, data, folder = make_input(args.seed, index)
        minimal = data
        if not args.no_minimise and outcome.kind != "hang" and source != "system":
            def same(candidate: bytes, _kind=outcome.kind, _sig=outcome.signature, _folder=folder) -> bool:
                try:
                    with time_limit(args.timeout):
                        got = check_text(candidate, _folder / FUZZ_NAME)
                except Timeout:
                    return False
                return got.kind == _kind and got.signature == _sig
            minimal = minimise(data, same)
        saved.append(_save(args.out, key, outcome, args.seed, index, source, data, minimal, count))

    findings_total = sum(v for k, v in kinds.items() if k not in ("ok", "error"))
    print(f"\nexecutions: {done} ({dict(sources)}) in {elapsed:.0f} s ({done / max(elapsed, 1e-9):.0f}/s), "
          f"seed {args.seed}, jobs {args.jobs}")
    print(f"outcomes:   {dict(sorted(kinds.items()))}")
    print(f"crashes:    {kinds['crash']}; all findings: {findings_total} in {len(findings)} distinct signatures")
    for folder, key in zip(saved, sorted(findings)):
        print(f"  {key}  ({findings[key][3]}x)  -> {folder}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
