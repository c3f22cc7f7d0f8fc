"""Names in a parsed `.net` file, resolved the way the elaborator resolves them: each
occurrence of a name linked to the place that defines it (a binding, a parameter, an
input, a for-loop target, a symbolic dim, or a const/block/network of this file or an
imported one). Drives go-to-definition, find-references and document symbols.

A body is one flat scope (loops and `if` branches bind into it, as in the elaborator),
walked in source order: `h = f(h)` reads the previous `h`, then defines a new one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from netc.dsl import ast
from netc.dsl.errors import Span


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    kind: str  # const | block | network | param | input | output | binding | unpacked | loop | dim
    span: Span  # the defining name
    full: Span  # the whole definition (a block's body, an assignment)


@dataclass
class SymbolIndex:
    """Occurrences of names in one file, each with its definition (None: a builtin or unknown)."""

    occurrences: list[tuple[Span, Definition | None, str]] = field(default_factory=list)
    top: dict[str, Definition] = field(default_factory=dict)  # this file's consts, blocks, networks
    definitions: list[Definition] = field(default_factory=list)

    def at(self, line: int, col: int) -> tuple[Span, Definition | None, str] | None:
        """The name occurrence under a 1-based position."""
        for span, defn, name in self.occurrences:
            if contains(span, line, col):
                return span, defn, name
        return None

    def references(self, defn: Definition) -> list[Span]:
        return [span for span, d, _ in self.occurrences if d == defn]


def contains(span: Span, line: int, col: int) -> bool:
    """Whether 1-based (line, col) lies in `span` (its end column included, so that a cursor
    just after a name still finds it)."""
    if (line, col) < (span.line, span.col):
        return False
    return (line, col) <= (span.end_line, span.end_col)


def name_span(lines: list[str], span: Span, name: str) -> Span:
    """The span of the identifier `name` first written at or after the start of `span`."""
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
    for line in range(span.line, min(span.end_line, len(lines)) + 1):
        start = span.col - 1 if line == span.line else 0
        match = pattern.search(lines[line - 1], start)
        if match:
            return Span(span.file, line, match.start() + 1, line, match.end() + 1)
    return Span(span.file, span.line, span.col, span.line, span.col + len(name))


class _Walker:
    def __init__(self, module: ast.Module, lines: list[str], imported: dict[str, Definition]):
        self.lines = lines
        self.index = SymbolIndex()
        self.imported = imported
        self.module = module

    def run(self) -> SymbolIndex:
        kinds = {ast.Const: "const", ast.BlockDef: "block", ast.NetworkDef: "network"}
        for item in self.module.items:
            if isinstance(item, ast.Import):
                continue
            defn = Definition(item.name, kinds[type(item)], name_span(self.lines, item.span, item.name), item.span)
            self.index.top.setdefault(item.name, defn)
            self._define(defn)
        for item in self.module.items:
            if isinstance(item, ast.Const):
                self.expr(item.value, {})
            elif isinstance(item, ast.BlockDef | ast.NetworkDef):
                scope: dict[str, Definition] = {}
                for p in item.params:
                    if p.default is not None:
                        self.expr(p.default, {})
                    self._bind(scope, Definition(p.name, "param", name_span(self.lines, p.span, p.name), p.span))
                self.body(item.body, scope, network=isinstance(item, ast.NetworkDef))
        self.index.occurrences.sort(key=lambda o: (o[0].line, o[0].col))
        return self.index

    def _define(self, defn: Definition) -> None:
        self.index.definitions.append(defn)
        self.index.occurrences.append((defn.span, defn, defn.name))

    def _bind(self, scope: dict[str, Definition], defn: Definition) -> None:
        scope[defn.name] = defn
        self._define(defn)

    def lookup(self, name: str, scope: dict[str, Definition]) -> Definition | None:
        return scope.get(name) or self.index.top.get(name) or self.imported.get(name)

    def body(self, stmts: tuple[ast.Stmt, ...], scope: dict[str, Definition], network: bool) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.Assign):
                self.expr(stmt.value, scope)
                single = len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                self.targets(stmt.targets, scope, "binding" if single else "unpacked", stmt.span)
            elif isinstance(stmt, ast.For):
                self.expr(stmt.iterable, scope)
                self.targets(stmt.targets, scope, "loop", stmt.span)
                self.body(stmt.body, scope, network)
            elif isinstance(stmt, ast.If):
                self.expr(stmt.cond, scope)
                self.body(stmt.then, scope, network)
                self.body(stmt.orelse, scope, network)
            elif isinstance(stmt, ast.Return):
                for v in stmt.values:
                    self.expr(v, scope)
            elif isinstance(stmt, ast.Input):
                for d in stmt.dims:  # an unbound name in an input's dims is a symbolic dim
                    if isinstance(d, ast.Name) and self.lookup(d.id, scope) is None:
                        self._bind(scope, Definition(d.id, "dim", d.span, stmt.span))
                    else:
                        self.expr(d, scope)
                self._bind(scope, Definition(stmt.name, "input", name_span(self.lines, stmt.span, stmt.name),
                                             stmt.span))
            elif isinstance(stmt, ast.Output):
                span = name_span(self.lines, stmt.span, stmt.name)
                if stmt.value is None:
                    self.index.occurrences.append((span, self.lookup(stmt.name, scope), stmt.name))
                else:
                    self.expr(stmt.value, scope)
                    self._bind(scope, Definition(stmt.name, "output", span, stmt.span))

    def targets(self, targets: tuple[ast.Target, ...], scope: dict[str, Definition], kind: str,
                full: Span) -> None:
        for t in targets:
            if isinstance(t, ast.Name):
                self._bind(scope, Definition(t.id, kind, t.span, full))
            else:
                self.targets(t, scope, kind, full)

    def expr(self, e: ast.Expr | ast.Slice | None, scope: dict[str, Definition]) -> None:
        # Iterative: expressions may nest hundreds of levels deep.
        stack: list[ast.Expr | ast.Slice | None] = [e]
        while stack:
            node = stack.pop()
            if node is None or isinstance(node, ast.Literal):
                continue
            if isinstance(node, ast.Name):
                self.index.occurrences.append((node.span, self.lookup(node.id, scope), node.id))
            elif isinstance(node, ast.Call):
                stack += [node.func, *node.args, *(k.value for k in node.kwargs)]
            elif isinstance(node, ast.BinOp | ast.Compare | ast.BoolOp):
                stack += [node.left, node.right]
            elif isinstance(node, ast.UnaryOp):
                stack.append(node.operand)
            elif isinstance(node, ast.Index):
                stack += [node.value, *node.items]
            elif isinstance(node, ast.Slice):
                stack += [node.start, node.stop, node.step]
            elif isinstance(node, ast.TupleExpr | ast.ListExpr):
                stack += list(node.items)
            elif isinstance(node, ast.IfExpr):
                stack += [node.cond, node.then, node.orelse]


def index_module(module: ast.Module, text: str, imported: dict[str, Definition] | None = None) -> SymbolIndex:
    """Resolve every name of `module`; `imported` maps names visible through imports to their
    definitions (in other files)."""
    return _Walker(module, text.split("\n"), imported or {}).run()


def top_definitions(module: ast.Module, text: str) -> dict[str, Definition]:
    """A file's consts, blocks and networks (for the files that import it)."""
    lines = text.split("\n")
    kinds = {ast.Const: "const", ast.BlockDef: "block", ast.NetworkDef: "network"}
    return {item.name: Definition(item.name, kinds[type(item)], name_span(lines, item.span, item.name), item.span)
            for item in module.items if not isinstance(item, ast.Import)}
