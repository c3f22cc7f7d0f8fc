"""Elaboration: AST + arguments -> IR graph.

Resolves names, binds arguments, inlines blocks, unrolls compile-time `for`/`if`, creates
and names parameters, and runs every op's shape rule as it is emitted, so a shape error
points at the call that caused it.
"""

from __future__ import annotations

import contextlib
import operator
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from netc.compiler import dims as D
from netc.compiler import intrinsics, tensor_syntax
from netc.compiler.builder import Builder
from netc.compiler.ir import DType, Graph, TensorType, Value
from netc.compiler.keywords import unknown_keyword_hint
from netc.compiler.limits import DEFAULT_LIMITS, Limits
from netc.compiler.operands import is_literal
from netc.compiler.ops import REGISTRY
from netc.compiler.ops.registry import REQUIRED, Arg
from netc.compiler.program import ModuleInfo, Program
from netc.compiler.sharing import (
    SharedLayer,
    call_shared,
    declare_param,
    declared_dtype,
    read_attribute,
)
from netc.compiler.values import BlockFn, Builtin, Intrinsic, Word, convert, count_text, describe
from netc.compiler.work import WorkBudget
from netc.dsl import ast
from netc.dsl.errors import (
    NetcError,
    NetcInputError,
    NetcLimitError,
    NetcNameError,
    NetcTypeError,
    Span,
    did_you_mean,
)

_UNBOUND = object()
_BLOCK_TYPES = ("int", "float", "bool", "str", "tensor", "list", "any", "dim", "act", "init", "dtype")


def builtin_scope() -> dict[str, Any]:
    """Names every file sees: registry ops, intrinsics, dtypes, initialisers."""
    scope: dict[str, Any] = {name: Builtin(op) for name, op in REGISTRY.ops.items() if not op.internal}
    scope.update(intrinsics.INTRINSICS)
    scope.update({d.value: d for d in DType})
    return scope


_BUILTINS: dict[str, Any] | None = None


def builtins() -> dict[str, Any]:
    global _BUILTINS
    if _BUILTINS is None:
        _BUILTINS = builtin_scope()
    return _BUILTINS


@dataclass
class Scope:
    vars: dict[str, Any] = field(default_factory=dict)
    parent: Scope | None = None
    module: ModuleInfo | None = None

    def lookup(self, name: str, elab: Elaborator) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        if self.module is not None and name in self.module.visible:
            return elab.module_definition(self.module.visible[name], name)
        return builtins().get(name, _UNBOUND)

    def visible_names(self) -> set[str]:
        names: set[str] = set(builtins())
        scope: Scope | None = self
        while scope is not None:
            names |= set(scope.vars)
            scope = scope.parent
        if self.module is not None:
            names |= set(self.module.visible)
        return names


class _Return(Exception):
    def __init__(self, value: Any):
        self.value = value


_NUMBER_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv,
    "%": operator.mod, "**": operator.pow,
}
_TENSOR_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow", "@": "matmul", "%": "mod",
               "//": "floordiv"}
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}


class Elaborator:
    def __init__(self, program: Program, builder: Builder, limits: Limits = DEFAULT_LIMITS):
        self.program = program
        self.b = builder
        self.limits = limits
        self._consts: dict[tuple[int, str], Any] = {}
        self._const_busy: set[tuple[int, str]] = set()
        self._block_stack: list[tuple[str, Span]] = []
        self._deepest: list[tuple[str, Span]] | None = None  # the block calls when recursion ran out
        self.work = program.work or WorkBudget(limits)  # shared by every network of the file
        # (span, value) of every expression evaluated and name bound, for editor tools
        # (hover, go-to-definition); None, and free, when compiling.
        self.trace: list[tuple[Span, Any]] | None = None

    # ------------------------------------------------------------------ definitions
    def module_definition(self, module: ModuleInfo, name: str) -> Any:
        if name in module.blocks:
            return BlockFn(module.blocks[name], module)
        if name in module.networks:
            return _NetworkRef(module.networks[name])
        key = (id(module), name)
        if key not in self._consts:
            const = module.consts[name]
            if key in self._const_busy:
                raise NetcNameError(f"constant '{name}' is defined in terms of itself", const.span)
            self._const_busy.add(key)
            try:
                value = self.eval(const.value, Scope(module=module))
            finally:
                self._const_busy.discard(key)
            if isinstance(value, Value):
                raise NetcTypeError(f"constant '{name}' must be known at compile time; it is a tensor", const.span)
            self._consts[key] = value
        return self._consts[key]

    # ------------------------------------------------------------------ statements
    def exec_body(self, stmts: Iterable[ast.Stmt], scope: Scope, graph_ctx: _NetworkCtx | None) -> None:
        for stmt in stmts:
            self.exec_stmt(stmt, scope, graph_ctx)

    def exec_stmt(self, stmt: ast.Stmt, scope: Scope, net: _NetworkCtx | None) -> None:
        if isinstance(stmt, ast.Assign):
            value = self.eval(stmt.value, scope)
            self.bind_targets(stmt.targets, value, scope, stmt.value.span)
        elif isinstance(stmt, ast.For):
            iterable = self.eval(stmt.iterable, scope)
            if isinstance(iterable, (D.Sym, Value)):
                raise NetcTypeError(f"for loops run at compile time and need a list; got {describe(iterable)}",
                                    stmt.iterable.span, ["use recur(...) to repeat over a sequence at run time"])
            if not isinstance(iterable, list | tuple):
                raise NetcTypeError(f"cannot iterate over {describe(iterable)}", stmt.iterable.span)
            for item in iterable:
                self.work.iteration(stmt.span)
                self.bind_targets(stmt.targets, item, scope, stmt.iterable.span)
                self.exec_body(stmt.body, scope, net)
        elif isinstance(stmt, ast.If):
            branch = stmt.then if self.condition(stmt.cond, scope) else stmt.orelse
            self.exec_body(branch, scope, net)
        elif isinstance(stmt, ast.Return):
            if net is not None:
                raise NetcTypeError("'return' belongs in a block; a network declares `output`s", stmt.span)
            values = [self.eval(v, scope) for v in stmt.values]
            raise _Return(values[0] if len(values) == 1 else tuple(values))
        elif isinstance(stmt, ast.ParamDecl):
            declare_param(self, stmt, scope)
        elif isinstance(stmt, ast.Input):
            if net is None:
                raise NetcTypeError("'input' belongs in a network; a block takes its inputs as parameters",
                                    stmt.span)
            net.add_input(self, stmt, scope)
        elif isinstance(stmt, ast.Output):
            if net is None:
                raise NetcTypeError("'output' belongs in a network; a block ends with `return`", stmt.span)
            net.add_output(self, stmt, scope)
        else:  # pragma: no cover - the parser produces no other statements
            raise AssertionError(stmt)

    def bind_targets(self, targets: tuple[ast.Target, ...], value: Any, scope: Scope, span: Span) -> None:
        if len(targets) == 1:
            self._bind(targets[0], value, scope, span)
            return
        self._bind(targets, value, scope, span)

    def _bind(self, target: ast.Target, value: Any, scope: Scope, span: Span) -> None:
        if isinstance(target, ast.Name):
            if target.id in builtins() and isinstance(builtins()[target.id], Builtin | Intrinsic):
                raise NetcNameError(f"'{target.id}' is a built-in and cannot be rebound", target.span)
            scope.vars[target.id] = value
            if self.trace is not None:
                self.trace.append((target.span, value))
            return
        if not isinstance(value, tuple | list):
            raise NetcTypeError(f"cannot unpack {describe(value)} into {len(target)} names", span)
        if len(value) != len(target):
            raise NetcTypeError(f"cannot unpack {describe(value)} into {len(target)} names", span)
        for t, v in zip(target, value):
            self._bind(t, v, scope, span)

    def condition(self, expr: ast.Expr, scope: Scope) -> bool:
        return self._truth(self.eval(expr, scope), expr)

    # ------------------------------------------------------------------ expressions
    def eval(self, expr: ast.Expr, scope: Scope) -> Any:
        method = getattr(self, "_eval_" + type(expr).__name__)
        value = method(expr, scope)
        if self.trace is not None:
            self.trace.append((expr.span, value))
        return value

    def _eval_Literal(self, e: ast.Literal, scope: Scope) -> Any:
        return e.value

    def _eval_Name(self, e: ast.Name, scope: Scope) -> Any:
        value = scope.lookup(e.id, self)
        if value is _UNBOUND:
            raise NetcNameError(f"unknown name '{e.id}'", e.span, [did_you_mean(e.id, scope.visible_names())])
        return value

    def _eval_TupleExpr(self, e: ast.TupleExpr, scope: Scope) -> tuple:
        return tuple(self.eval(i, scope) for i in e.items)

    def _eval_ListExpr(self, e: ast.ListExpr, scope: Scope) -> list:
        return [self.eval(i, scope) for i in e.items]

    def _eval_IfExpr(self, e: ast.IfExpr, scope: Scope) -> Any:
        return self.eval(e.then if self.condition(e.cond, scope) else e.orelse, scope)

    def _eval_BoolOp(self, e: ast.BoolOp, scope: Scope) -> Any:
        left = self.eval(e.left, scope)
        if isinstance(left, Value):  # bool tensors: elementwise logic, both sides evaluated
            return tensor_syntax.logic(self, e.op, left, self.eval(e.right, scope), e.span)
        left = self._truth(left, e.left)
        if (e.op == "and" and not left) or (e.op == "or" and left):
            return left
        right = self.eval(e.right, scope)
        if isinstance(right, Value):
            return tensor_syntax.logic(self, e.op, left, right, e.span)
        return self._truth(right, e.right)

    def _truth(self, value: Any, expr: ast.Expr) -> bool:
        if isinstance(value, bool):
            return value
        hints = ["to choose elementwise at run time, use where(cond, a, b)"] if isinstance(value, Value) else []
        raise NetcTypeError(f"a condition must be true or false at compile time; got {describe(value)}",
                            expr.span, hints)

    def _eval_UnaryOp(self, e: ast.UnaryOp, scope: Scope) -> Any:
        value = self.eval(e.operand, scope)
        if e.op == "not" and isinstance(value, Value):
            return self.tensor_op("logical_not", [value], e.span)
        if e.op == "not":
            return not self._truth(value, e.operand)
        if e.op == "+":
            if isinstance(value, int | float | D.Sym | Value) and not isinstance(value, bool):
                return value
        elif isinstance(value, Value):
            return self.tensor_op("neg", [value], e.span)
        elif isinstance(value, D.Sym):
            return D.neg(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return -value
        raise NetcTypeError(f"unary '{e.op}' does not apply to {describe(value)}", e.span)

    def _eval_Compare(self, e: ast.Compare, scope: Scope) -> Any:
        left, right = self.eval(e.left, scope), self.eval(e.right, scope)
        if isinstance(left, Value) or isinstance(right, Value):  # a run-time comparison: a bool tensor
            return tensor_syntax.compare(self, e.op, left, right, e.span)
        if isinstance(left, D.Sym) or isinstance(right, D.Sym):
            diff = D.sub(left, right) if _is_dim(left) and _is_dim(right) else None
            if isinstance(diff, int) and e.op in ("==", "!="):
                return (diff == 0) == (e.op == "==")
            if isinstance(diff, int):
                return _COMPARE[e.op](diff, 0)
            raise NetcTypeError(f"cannot decide '{e.op}' at compile time: {describe(left)} vs {describe(right)}",
                                e.span, ["give the symbolic dim a value with `--set`"])
        if isinstance(left, list | tuple | str) and isinstance(right, list | tuple | str):
            self.work.items_touched(_items(left) + _items(right), f"'{e.op}' on {type(left).__name__}s", e.span)
        try:
            return bool(_COMPARE[e.op](left, right))
        except TypeError:
            raise NetcTypeError(f"cannot compare {describe(left)} with {describe(right)}", e.span) from None

    def _eval_BinOp(self, e: ast.BinOp, scope: Scope) -> Any:
        left, right = self.eval(e.left, scope), self.eval(e.right, scope)
        return self.binop(e.op, left, right, e.span)

    def binop(self, op: str, left: Any, right: Any, span: Span) -> Any:
        if isinstance(left, Value) or isinstance(right, Value):
            return self._tensor_binop(op, left, right, span)
        if _is_number(left) and _is_number(right):
            return self._number_binop(op, left, right, span)
        if _is_dim(left) and _is_dim(right):
            return self._dim_binop(op, left, right, span)
        if op == "+" and isinstance(left, list | tuple | str) and type(left) is type(right):
            self._check_length(len(left) + len(right), left, span)
            self.work.items_touched(len(left) + len(right), f"{type(left).__name__} '+'", span)
            return left + right
        if op == "*" and isinstance(left, list) and _is_int(right):
            self._check_length(len(left) * max(right, 0), left, span)
            self.work.items_touched(len(left) * max(right, 0), "list '*'", span)
            return left * right
        raise NetcTypeError(f"'{op}' does not apply to {describe(left)} and {describe(right)}", span)

    def _check_length(self, n: int, like: list | tuple | str, span: Span) -> None:
        """Refuse a compile-time list, tuple or string longer than the limit before it is made."""
        if n > self.limits.max_list_items:
            what = "string of {} characters" if isinstance(like, str) else type(like).__name__ + " of {} items"
            raise NetcLimitError(f"a compile-time {what.format(count_text(n))} is over the limit of "
                                 f"{self.limits.max_list_items}", span)

    def _check_int(self, value: Any, span: Span) -> Any:
        """Refuse a compile-time integer (or a symbolic dim's coefficient) beyond the limit."""
        bits = self.limits.max_int_bits
        coeffs = [value] if _is_int(value) else [c for _, c in value.terms] if isinstance(value, D.Sym) else []
        if any(c.bit_length() > bits for c in coeffs):
            raise NetcLimitError(f"a compile-time integer grows beyond {bits} bits", span,
                                 ["a loop that multiplies a number by itself grows without bound"])
        return value

    def _number_binop(self, op: str, left: Any, right: Any, span: Span) -> Any:
        try:
            if op == "/":
                if _is_int(left) and _is_int(right) and right != 0 and left % right == 0:
                    return left // right  # exact division of ints stays an int (dims: T/2)
                return left / right
            if op == "@":
                raise TypeError
            if op == "**" and _is_int(left) and _is_int(right) and abs(right) > 4096:
                raise NetcLimitError(f"exponent {right} is too large", span)
            if op == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1 \
                    and right * (abs(left).bit_length() - 1) > self.limits.max_int_bits:
                base = describe(left).removeprefix("int ")
                raise NetcLimitError(f"{base}**{right} is too large (over {self.limits.max_int_bits} bits)", span)
            return self._check_int(_NUMBER_OPS[op](left, right), span)
        except ZeroDivisionError:
            raise NetcTypeError("division by zero", span) from None
        except (TypeError, OverflowError):
            raise NetcTypeError(f"'{op}' does not apply to {describe(left)} and {describe(right)}", span) from None

    def _dim_binop(self, op: str, left: Any, right: Any, span: Span) -> Any:
        return self._check_int(self._dim_arith(op, left, right, span), span)

    def _dim_arith(self, op: str, left: Any, right: Any, span: Span) -> Any:
        if op == "+":
            return D.add(left, right)
        if op == "-":
            return D.sub(left, right)
        if op == "*":
            return D.mul(left, right)
        if op in ("//", "/") and _is_int(right) and right > 0:
            if op == "//":
                return D.floordiv(left, right)
            exact = D.exact_div(left, right)
            if exact is None:
                raise NetcTypeError(f"{left} / {right} is not known to be whole", span,
                                    [f"use ({left}) // {right} to round down"])
            return exact
        raise NetcTypeError(f"'{op}' does not apply to {describe(left)} and {describe(right)}", span)

    def _tensor_binop(self, op: str, left: Any, right: Any, span: Span) -> Value:
        if op not in _TENSOR_OPS:
            raise NetcTypeError(f"'{op}' does not apply to tensors", span)
        for v in (left, right):
            if not (isinstance(v, Value | D.Sym) or _is_number(v) or is_literal(v)):
                raise NetcTypeError(f"'{op}' does not apply to {describe(left)} and {describe(right)}", span)
        kind = _TENSOR_OPS[op]
        if kind == "matmul" and not (isinstance(left, Value) and isinstance(right, Value)):
            raise NetcTypeError(f"'@' needs two tensors; got {describe(left)} and {describe(right)}", span)
        self.b.begin_layer(kind, span)
        return REGISTRY[kind].build(self.b, x=left, y=right)

    def tensor_op(self, kind: str, inputs: list[Value], span: Span, attrs: dict | None = None) -> Value:
        self.b.begin_layer(kind, span)
        return self.b.emit(kind, inputs, attrs or {})[0]

    def _eval_Index(self, e: ast.Index, scope: Scope) -> Any:
        value = self.eval(e.value, scope)
        items = []
        for item in e.items:
            if isinstance(item, ast.Slice):
                parts = [None if p is None else self.eval(p, scope) for p in (item.start, item.stop, item.step)]
                for p, src in zip(parts, (item.start, item.stop, item.step)):
                    if p is not None and not _is_int(p):
                        raise NetcTypeError(f"slice bounds must be integers; got {describe(p)}", src.span)
                items.append(slice(*parts))
            else:
                index = self.eval(item, scope)
                if isinstance(index, Value) and isinstance(value, Value):  # x[:, idx]: a Gather
                    items.append(index)
                    continue
                if not _is_int(index):
                    raise NetcTypeError(f"an index must be an integer; got {describe(index)}", item.span)
                items.append(index)
        if isinstance(value, Value) and any(isinstance(i, Value) for i in items):
            return tensor_syntax.tensor_index(self, value, items, e)
        if isinstance(value, Value):
            return self.tensor_op("index", [value], e.span, {"items": tuple(_slice_key(i) for i in items)})
        if isinstance(value, list | tuple | str):
            if len(items) != 1:
                raise NetcTypeError(f"{describe(value)} takes one index", e.span)
            if isinstance(items[0], slice) and items[0].step == 0:
                raise NetcTypeError("slice step must not be zero", e.span)
            if isinstance(items[0], slice):
                self.work.items_touched(len(range(*items[0].indices(len(value)))), "a slice", e.span)
            try:
                return value[items[0]]
            except IndexError:
                index = items[0] if isinstance(items[0], slice) else describe(items[0]).removeprefix("int ")
                raise NetcTypeError(f"index {index} is out of range for {describe(value)}", e.span) from None
        raise NetcTypeError(f"cannot index {describe(value)}", e.span)

    def _eval_Attribute(self, e: ast.Attribute, scope: Scope) -> Any:
        return read_attribute(self, e, scope)

    # ------------------------------------------------------------------ calls
    def _eval_Call(self, e: ast.Call, scope: Scope) -> Any:
        func = self.eval(e.func, scope)
        args = [(self._eval_argument(a, scope), a.span) for a in e.args]
        kwargs: dict[str, tuple[Any, Span]] = {}
        for kw in e.kwargs:
            if kw.name in kwargs:
                raise NetcTypeError(f"argument '{kw.name}' is given twice", kw.span)
            kwargs[kw.name] = (self._eval_argument(kw.value, scope), kw.span)
        return self.call(func, args, kwargs, e.span)

    def _eval_argument(self, expr: ast.Expr, scope: Scope) -> Any:
        """An argument; an unbound bare name becomes a `Word` (`pad=same`), which only an
        argument with named options accepts — anywhere else it is an unknown-name error."""
        if isinstance(expr, ast.Name) and scope.lookup(expr.id, self) is _UNBOUND:
            error = NetcNameError(f"unknown name '{expr.id}'", expr.span,
                                  [did_you_mean(expr.id, scope.visible_names())])
            return Word(expr.id, error)
        return self.eval(expr, scope)

    def call(self, func: Any, args: list[tuple[Any, Span]], kwargs: dict[str, tuple[Any, Span]],
             span: Span) -> Any:
        if isinstance(func, Builtin):
            return self._call_builtin(func, args, kwargs, span)
        if isinstance(func, Intrinsic):
            if getattr(func.fn, "raw_arguments", False):  # every argument with its span (`shared`)
                return func.fn(self, span, args, kwargs)
            bound = bind_arguments(func.name, func.signature, args, kwargs, span)
            if getattr(func.fn, "wants_spans", False):  # for errors that point at one argument
                bound["spans"] = argument_spans(func.signature, args, kwargs, span)
            return func.fn(self, span, **bound)
        if isinstance(func, BlockFn):
            return self._call_block(func, args, kwargs, span)
        if isinstance(func, SharedLayer):
            return call_shared(self, func, args, kwargs, span)
        raise NetcTypeError(f"{describe(func)} is not callable", span,
                            ["a pipeline step must be a layer or a block"] if args else [])

    def _call_builtin(self, func: Builtin, args, kwargs, span: Span, label: str | None = None) -> Any:
        name = None
        if "name" in kwargs and (func.opdef.has_params or func.opdef.seeded):
            name = _layer_name(kwargs.pop("name"), "layer")
        bound = bind_arguments(func.name, func.opdef.signature, args, kwargs, span)
        if label is not None:  # a shared layer keeps the label it was made with
            self.b.begin_shared(label, span)
        else:
            self.b.begin_layer(func.name, span, name)
        return func.opdef.build(self.b, **bound)

    def _call_block(self, func: BlockFn, args, kwargs, span: Span, inline: bool = False,
                    label: str | None = None) -> Any:
        """Instantiate a block. `inline` names its layers in the current scope instead of a
        new one (a recurrence's step block: its layers are the recurrence's); `label` names
        the instance as it is (a shared block)."""
        defn = func.defn
        name = None
        if "name" in kwargs and "name" not in {p.name for p in defn.params}:
            name = _layer_name(kwargs.pop("name"), "block instance")
        if len(self._block_stack) >= self.limits.max_depth:
            chain = " -> ".join(n for n, _ in self._block_stack[-4:])
            raise NetcLimitError(f"block instantiation nests deeper than {self.limits.max_depth} "
                                 f"(... {chain} -> {defn.name}); is '{defn.name}' recursive?", span)
        scope = Scope(module=func.module)
        signature = tuple(Arg(p.name, "any", None if p.default is not None else REQUIRED) for p in defn.params)
        bound = bind_arguments(defn.name, signature, args, kwargs, span, allow_missing_defaults=True)
        spans = {p.name: span for p in defn.params}
        for (_, s), p in zip(args, defn.params):
            spans[p.name] = s
        for p in defn.params:
            if p.name in kwargs:
                spans[p.name] = kwargs[p.name][1]
            value = bound.get(p.name, _UNBOUND)
            if value is _UNBOUND:
                value = self.eval(p.default, Scope(module=func.module)) if p.default is not None else None
            if p.type is not None:
                value = self._check_block_param(defn, p, value, spans[p.name])
            scope.vars[p.name] = value
            if self.trace is not None:
                self.trace.append((p.span, value))
        self._block_stack.append((defn.name, span))
        builder = self.b
        if not inline:
            builder.push_scope(defn.name, name, label)
        try:
            self.exec_body(defn.body, scope, None)
        except _Return as ret:
            return ret.value
        except NetcError as err:
            if len(err.notes) < 6:
                err.with_note(span, f"in block '{defn.name}' called here")
            raise
        except RecursionError:
            if self._deepest is None:  # the innermost call; no function calls here, the stack is full
                self._deepest = self._block_stack[:]
            raise
        finally:
            if not inline:
                builder.pop_scope()
            self._block_stack.pop()
        raise NetcTypeError(f"block '{defn.name}' ends without `return`", defn.span)

    def _check_block_param(self, defn: ast.BlockDef, p: ast.Param, value: Any, span: Span) -> Any:
        assert p.type is not None
        kind = p.type.id
        if kind not in _BLOCK_TYPES:
            raise NetcNameError(f"unknown parameter type '{kind}'", p.type.span,
                                [did_you_mean(kind, _BLOCK_TYPES) or "types: " + ", ".join(_BLOCK_TYPES)])
        if kind == "list":
            if not isinstance(value, list | tuple):
                raise NetcTypeError(f"{defn.name}: '{p.name}' expects a list; got {describe(value)}", span)
            return value
        converted = convert(value, Arg(p.name, kind), span, defn.name)
        if kind == "act" and isinstance(value, Builtin):
            return value  # the activation itself, so the block can call it: `a(x)`, `x -> a`
        return converted




def _layer_name(given: tuple[Any, Span], what: str) -> str:
    """The `name=` of a layer or block call: an identifier string (it prefixes parameter names)."""
    value, span = given
    if not isinstance(value, str) or not value.isidentifier():
        raise NetcTypeError(f"a {what} name must be an identifier string; got {describe(value)}", span)
    return value


class _NetworkRef:
    def __init__(self, defn: ast.NetworkDef):
        self.defn = defn


def bind_arguments(fname: str, signature: tuple[Arg, ...], args: list[tuple[Any, Span]],
                   kwargs: dict[str, tuple[Any, Span]], span: Span,
                   allow_missing_defaults: bool = False) -> dict[str, Any]:
    """Match positional and keyword arguments to `signature` and convert each to its kind."""
    bound: dict[str, Any] = {}
    positional = list(args)
    # Unknown keywords first: `conv2d(16, kernal=3)` is a typo of `kernel`, not a call
    # missing its kernel.
    names = {a.name for a in signature}
    if not any(a.kind == "kwargs" for a in signature):
        for key, (_, s) in kwargs.items():
            if key not in names:
                raise NetcNameError(f"{fname}() has no argument '{key}'", s,
                                    [unknown_keyword_hint(key, names)
                                     or f"signature: {signature_text(fname, signature)}"])
    for arg in signature:
        if arg.kind == "kwargs":  # the remaining keyword arguments, kept with their spans
            known = {a.name for a in signature}
            bound[arg.name] = {k: v for k, v in kwargs.items() if k not in known}
            continue
        if arg.variadic:
            rest = positional
            positional = []
            bound[arg.name] = tuple(convert(v, Arg(arg.name, arg.kind, positive=arg.positive), s, fname)
                                    for v, s in rest)
            continue
        if positional:
            value, s = positional.pop(0)
            if arg.name in kwargs:
                raise NetcTypeError(f"{fname}: '{arg.name}' is given both by position and by name",
                                    kwargs[arg.name][1])
            bound[arg.name] = convert(value, arg, s, fname)
        elif arg.name in kwargs:
            value, s = kwargs[arg.name]
            bound[arg.name] = convert(value, arg, s, fname)
        elif arg.required:
            what = "a tensor to apply it to" if arg.kind == "tensor" else f"'{arg.name}'"
            raise NetcTypeError(f"{fname}() is missing {what}", span,
                                [f"signature: {signature_text(fname, signature)}"])
        elif not allow_missing_defaults:
            bound[arg.name] = arg.default
    if positional:
        value, s = positional[0]
        raise NetcTypeError(f"{fname}() takes at most {len(signature)} positional arguments; "
                            f"got {len(args)}", s, [f"signature: {signature_text(fname, signature)}"])
    return bound


def argument_spans(signature: tuple[Arg, ...], args: list[tuple[Any, Span]],
                   kwargs: dict[str, tuple[Any, Span]], span: Span) -> dict[str, Span]:
    """Where each argument of a call was written (the call's span for defaults)."""
    spans = {a.name: span for a in signature}
    for arg, (_, s) in zip((a for a in signature if not a.variadic and a.kind != "kwargs"), args):
        spans[arg.name] = s
    spans.update({name: s for name, (_, s) in kwargs.items()})
    return spans


def signature_text(fname: str, signature: tuple[Arg, ...]) -> str:
    parts = []
    for a in signature:
        if a.kind == "kwargs":
            parts.append(f"**{a.name}")
        elif a.variadic:
            parts.append(f"*{a.name}")
        elif a.required:
            parts.append(a.name)
        else:
            parts.append(f"{a.name}={_default_text(a.default)}")
    return f"{fname}({', '.join(parts)})"


def _default_text(value: Any) -> str:
    """A default value as it would be written in a .net file."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, DType):
        return value.value
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_default_text(v) for v in value) + "]"
    return str(value)


def _slice_key(item: int | slice) -> int | tuple:
    return item if isinstance(item, int) else (item.start, item.stop, item.step)


def _items(value: list | tuple | str) -> int:
    """What comparing `value` may touch: its items, and those of the lists nested in it,
    counted as a tree (`a = [a, a]` forty times is 2^40 items to compare) but computed over
    the distinct lists only, without recursion."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        v, expanded = stack.pop()
        if id(v) in sizes:
            continue
        if isinstance(v, str) or not isinstance(v, list | tuple):
            sizes[id(v)] = len(v) if isinstance(v, str) else 1
            continue
        nested = [c for c in v if isinstance(c, list | tuple | str)]
        if expanded:
            sizes[id(v)] = len(v) + sum(sizes[id(c)] for c in nested)
        else:
            stack.append((v, True))
            stack.extend((c, False) for c in nested if id(c) not in sizes)
    return sizes[id(value)]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_dim(v: Any) -> bool:
    return _is_int(v) or isinstance(v, D.Sym)


# ---------------------------------------------------------------------- networks


class _NetworkCtx:
    """The graph-level state of one network being elaborated."""

    def __init__(self, graph: Graph, dim_values: dict[str, int]):
        self.graph = graph
        self.dim_values = dim_values
        self.used_dims: set[str] = set()
        self.input_spans: dict[str, Span] = {}

    def add_input(self, elab: Elaborator, stmt: ast.Input, scope: Scope) -> None:
        if stmt.name in self.input_spans or stmt.name in scope.vars:
            raise NetcNameError(f"'{stmt.name}' is already defined", stmt.span)
        dtype = declared_dtype(stmt.dtype)
        if dtype is DType.bf16:
            raise NetcTypeError("bf16 inputs are not supported (NumPy has no bfloat16)", stmt.dtype.span)
        shape = []
        for d in stmt.dims:
            if isinstance(d, ast.Name) and scope.lookup(d.id, elab) is _UNBOUND:
                if d.id in self.dim_values:
                    value: Any = self.dim_values[d.id]
                    self.used_dims.add(d.id)
                else:
                    value = D.symbol(d.id)
                scope.vars[d.id] = value
            else:
                value = elab.eval(d, scope)
            if not _is_dim(value):
                raise NetcTypeError(f"a dimension must be an integer or a symbolic name; got {describe(value)}",
                                    d.span)
            if isinstance(value, int) and value <= 0:
                raise NetcTypeError(f"dimensions must be positive; got {value}", d.span)
            shape.append(value)
        elab.b.span = stmt.span
        t = TensorType(dtype, tuple(shape))
        elab.b.check_type(t)
        value = Value(stmt.name, t)
        elab.b.fresh_name(stmt.name)
        self.graph.inputs.append(value)
        self.input_spans[stmt.name] = stmt.span
        scope.vars[stmt.name] = value
        if elab.trace is not None:
            elab.trace.append((stmt.span, value))

    def add_output(self, elab: Elaborator, stmt: ast.Output, scope: Scope) -> None:
        if stmt.name in self.graph.outputs:
            raise NetcNameError(f"output '{stmt.name}' is declared twice", stmt.span)
        if stmt.value is None:
            value = elab.eval(ast.Name(stmt.name, stmt.span), scope)
        if stmt.name in self.input_spans:
            # An ONNX graph names each value once: an output cannot take an input's name.
            if stmt.value is None and any(value is v for v in self.graph.inputs):
                raise NetcNameError(f"output '{stmt.name}' is the input itself; nothing to compute", stmt.span,
                                    [f"to pass the input through, give the output a name of its own: "
                                     f"`output {stmt.name}_out = {stmt.name}`"])
            raise NetcNameError(f"output '{stmt.name}' has the same name as an input", stmt.span,
                                [f"the input is declared at {self.input_spans[stmt.name]}"])
        if stmt.value is not None:
            value = elab.eval(stmt.value, scope)
            scope.vars[stmt.name] = value
        if not isinstance(value, Value):
            raise NetcTypeError(f"output '{stmt.name}' must be a tensor; got {describe(value)}",
                                stmt.value.span if stmt.value else stmt.span)
        self.graph.outputs[stmt.name] = value


@dataclass(frozen=True)
class NetworkOptions:
    """What the command line can change: network parameters and symbolic dims (`--set`)."""

    settings: dict[str, Any] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS


def choose_network(program: Program, name: str | None) -> ast.NetworkDef:
    networks = program.networks
    if name is not None:
        if name not in networks:
            raise NetcNameError(f"no network named '{name}' in {program.root.module.path}", None,
                                [did_you_mean(name, networks) or "networks: " + (", ".join(networks) or "none")])
        return networks[name]
    if not networks:
        raise NetcNameError(f"{program.root.module.path} defines no network", None,
                            ["declare one with `network Name { input ...; output ... }`"])
    if len(networks) > 1:
        raise NetcInputError(f"{program.root.module.path} defines {len(networks)} networks; choose one",
                             None, ["--network " + " | ".join(networks)])
    return next(iter(networks.values()))


# Elaboration recurses through expressions and block calls: up to `Limits.max_depth` blocks
# deep, each with expressions up to the parser's nesting limit. Python's default recursion
# limit (1000) would run out long before `max_depth` trips, so elaboration runs with more
# headroom; whatever still exhausts it is a `NetcLimitError`, never a RecursionError.
ELABORATION_RECURSION_LIMIT = 12_000
_recursion_lock = threading.Lock()
_recursion_users = 0
_recursion_saved = 0


@contextlib.contextmanager
def recursion_headroom(limit: int = ELABORATION_RECURSION_LIMIT) -> Iterator[None]:
    """Raise Python's recursion limit to at least `limit` while the body runs (restored by
    the last of several threads to leave)."""
    global _recursion_users, _recursion_saved
    with _recursion_lock:
        if _recursion_users == 0:
            _recursion_saved = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_recursion_saved, limit))
        _recursion_users += 1
    try:
        yield
    finally:
        with _recursion_lock:
            _recursion_users -= 1
            if _recursion_users == 0:
                sys.setrecursionlimit(_recursion_saved)


def elaborate_network(program: Program, defn: ast.NetworkDef, options: NetworkOptions = NetworkOptions(),
                      trace: list[tuple[Span, Any]] | None = None) -> Graph:
    """Build the IR graph of one network with the given parameter and dim settings; `trace`,
    when given, collects the (span, value) of every expression and binding."""
    graph = Graph(defn.name, source=program.root.module.path, span=defn.span)
    builder = Builder(graph, options.limits)
    elab = Elaborator(program, builder, options.limits)
    elab.trace = trace
    try:
        with recursion_headroom():
            _elaborate(program, defn, options, elab, graph)
    except RecursionError:
        raise _too_deep(defn, elab._deepest or []) from None
    return graph


def _too_deep(defn: ast.NetworkDef, stack: list[tuple[str, Span]]) -> NetcLimitError:
    """The error for elaboration that exhausted Python's recursion limit."""
    if not stack:
        return NetcLimitError(f"network '{defn.name}' nests too deeply to elaborate: expressions or constants "
                              "defined in terms of each other too many levels deep", defn.span)
    names = [n for n, _ in stack]
    chain = " -> ".join(names[-4:])
    recursive = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    hints = [f"'{recursive[0]}' calls itself: give the recursion a condition that ends it"] if recursive else []
    return NetcLimitError(f"block calls nest too deeply to elaborate: {len(stack)} deep (... {chain}), with deeply "
                          "nested expressions in between", stack[-1][1], hints)


def _elaborate(program: Program, defn: ast.NetworkDef, options: NetworkOptions, elab: Elaborator,
               graph: Graph) -> None:
    module = program.modules.get(defn.span.file) or _module_of(program, defn)
    scope = Scope(module=module)
    settings = dict(options.settings)
    param_names = {p.name for p in defn.params}
    for p in defn.params:
        if p.name in settings:
            value = settings.pop(p.name)
        elif p.default is not None:
            value = elab.eval(p.default, Scope(module=module))
        else:
            raise NetcInputError(f"network '{defn.name}' needs a value for '{p.name}'", p.span,
                                 [f"pass --set {p.name}=..."])
        if p.type is not None:
            value = _convert_setting(elab, defn, p, value)
        scope.vars[p.name] = value
    dim_values = {k: v for k, v in settings.items()}
    for k, v in dim_values.items():
        if not _is_int(v) or v <= 0:
            raise NetcInputError(f"--set {k}={v}: a dim needs a positive integer", None)
    net = _NetworkCtx(graph, dim_values)
    elab.exec_body(defn.body, scope, net)
    unknown = set(dim_values) - net.used_dims
    if unknown:
        known = param_names | {d for v in graph.inputs for s in v.type.shape for d in D.symbols(s)}
        name = sorted(unknown)[0]
        raise NetcInputError(f"--set {name}: network '{defn.name}' has no parameter or dim named '{name}'",
                             None, [did_you_mean(name, known) or "settable: " + (", ".join(sorted(known)) or "none")])
    if not graph.inputs:
        raise NetcTypeError(f"network '{defn.name}' declares no input", defn.span)
    if not graph.outputs:
        raise NetcTypeError(f"network '{defn.name}' declares no output", defn.span,
                            ["add `output y = ...`"])


def _convert_setting(elab: Elaborator, defn: ast.NetworkDef, p: ast.Param, value: Any) -> Any:
    assert p.type is not None
    if p.type.id == "float" and _is_int(value):
        value = float(value)
    if p.type.id == "act" and isinstance(value, str) and isinstance(builtins().get(value), Builtin):
        value = builtins()[value]  # `--set act=tanh` names the activation
    try:
        return elab._check_block_param(defn, p, value, p.span)  # type: ignore[arg-type]
    except NetcTypeError as err:
        raise NetcInputError(f"network parameter '{p.name}': {err.message.split(': ', 1)[-1]}", p.span) from None


def _module_of(program: Program, defn: ast.NetworkDef) -> ModuleInfo:
    for info in program.modules.values():
        if defn.name in info.networks and info.networks[defn.name] is defn:
            return info
    raise AssertionError("network not found in program")
