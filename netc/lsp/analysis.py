"""Checking one open `.net` document for the editor: diagnostics (every network checked on
its own, so a file with several broken networks shows several errors), plus what hover and
go-to-definition need — the values each expression took while elaborating, the ops each
call made, and the names resolved to their definitions.

Elaboration stops at a network's first error (after it, values are unknown, so further
errors in that network could be false); each network, and the file's imports, are
independent, so each reports its own. Parsed imports are cached by modification time.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netc.compiler.elaborate import NetworkOptions, elaborate_network
from netc.compiler.ir import Graph, Op
from netc.compiler.program import ModuleInfo, Program, load_program
from netc.dsl import ast
from netc.dsl.errors import NetcError, Span
from netc.dsl.parser import parse_file, parse_source
from netc.lsp.symbols import Definition, SymbolIndex, index_module, top_definitions


@dataclass(frozen=True)
class Diagnostic:
    span: Span  # in the analysed file
    message: str
    severity: str = "error"  # error | warning
    code: str = ""
    related: tuple[tuple[Span, str], ...] = ()
    origin: Span | None = None  # where the error happened, when that is in another file
    detail: str = ""  # the message as it reads there


@dataclass
class Analysis:
    """What is known about one version of a document."""

    path: str
    text: str
    module: ast.Module | None = None
    program: Program | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    graphs: list[Graph] = field(default_factory=list)
    values: dict[Span, list[Any]] = field(default_factory=dict)  # expression span -> values it took
    ops: dict[Span, list[Op]] = field(default_factory=dict)  # call span -> ops it made
    symbols: SymbolIndex | None = None
    seconds: float = 0.0


class Analyzer:
    """Checks documents; keeps parsed imports and the texts of open (unsaved) documents."""

    def __init__(self) -> None:
        self.overlays: dict[str, str] = {}  # resolved path -> text of an open document
        self._parsed: dict[str, tuple[Any, ast.Module, str]] = {}  # path -> (stamp, module, text)

    # ------------------------------------------------------------------ parsing with a cache
    def parse(self, path: Path) -> ast.Module:
        return self._load(path)[0]

    def _load(self, path: Path) -> tuple[ast.Module, str]:
        key = str(path)
        text = self.overlays.get(key)
        if text is not None:
            stamp: Any = ("overlay", hash(text))
        else:
            try:
                st = path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except OSError:
                return parse_file(path), ""  # raises the located "cannot read" error
        hit = self._parsed.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        if text is None:
            module = parse_file(path)
            text = path.read_text(encoding="utf-8")
        else:
            module = parse_source(text, key)
        self._parsed[key] = (stamp, module, text)
        return module, text

    def source(self, path: str) -> str:
        if path in self.overlays:
            return self.overlays[path]
        hit = self._parsed.get(path)
        return hit[2] if hit else ""

    # ------------------------------------------------------------------ checking
    def analyse(self, path: str, text: str) -> Analysis:
        """Check `text` as the contents of `path`; never raises."""
        start = time.perf_counter()
        result = Analysis(path, text)
        try:
            self._analyse(result)
        except RecursionError:
            result.diagnostics.append(Diagnostic(Span(path, 1, 1, 1, 2), "the file nests too deeply to check"))
        except Exception as err:  # a bug in netc: say so in the editor, keep serving
            traceback.print_exc(file=sys.stderr)
            result.diagnostics.append(Diagnostic(Span(path, 1, 1, 1, 2),
                                                 f"internal error in netc, please report: {type(err).__name__}: {err}",
                                                 code="internal"))
        result.seconds = time.perf_counter() - start
        return result

    def _analyse(self, result: Analysis) -> None:
        path, text = result.path, result.text
        try:
            result.module = parse_source(text, path)
        except NetcError as err:
            result.diagnostics.append(self._diagnostic(err, result))
            return
        try:
            result.program = load_program(path, text, parse=self.parse)
        except NetcError as err:
            result.diagnostics.append(self._diagnostic(err, result))
        result.symbols = index_module(result.module, text, self._imported(result))
        if result.program is None:
            return
        trace: list[tuple[Span, Any]] = []
        for defn in result.program.networks.values():
            unset = [p for p in defn.params if p.default is None]
            if unset:  # `netc check` needs --set for it; the editor cannot guess a value
                result.diagnostics.append(Diagnostic(
                    unset[0].span, f"network '{defn.name}' is not checked here: parameter '{unset[0].name}' has no "
                    "default (give it one, or check with `netc check --set`)", "warning", "unchecked"))
                continue
            try:
                result.graphs.append(elaborate_network(result.program, defn, NetworkOptions(), trace))
            except NetcError as err:
                result.diagnostics.append(self._diagnostic(err, result))
        values: dict[Span, list[Any]] = defaultdict(list)
        for span, value in trace:
            values[span].append(value)
        result.values = dict(values)
        ops: dict[Span, list[Op]] = defaultdict(list)
        for graph in result.graphs:
            for op in graph.walk():
                if op.span is not None:
                    ops[op.span].append(op)
        result.ops = dict(ops)
        result.diagnostics += unused_bindings(result.module, result.symbols)
        result.diagnostics = _dedupe(result.diagnostics)

    def _imported(self, result: Analysis) -> dict[str, Definition]:
        if result.program is None:
            return {}
        own = {i.name for i in result.module.items if not isinstance(i, ast.Import)} if result.module else set()
        return {k: v for k, v in self.imported_definitions(result.program.root).items() if k not in own}

    def imported_definitions(self, info: ModuleInfo) -> dict[str, Definition]:
        """Definitions visible in `info` through its imports, by name, located in their files."""
        out: dict[str, Definition] = {}
        tops: dict[int, dict[str, Definition]] = {}
        for name, where in info.visible.items():
            if where is info:
                continue
            if id(where) not in tops:
                tops[id(where)] = top_definitions(where.module, self.source(where.module.path))
            if name in tops[id(where)]:
                out[name] = tops[id(where)][name]
        return out

    def module_symbols(self, info: ModuleInfo) -> SymbolIndex:
        """The resolved names of a loaded (imported) module."""
        return index_module(info.module, self.source(info.module.path), self.imported_definitions(info))

    # ------------------------------------------------------------------ errors
    def _diagnostic(self, err: NetcError, result: Analysis) -> Diagnostic:
        """The error placed in this file: where it happened, or else the call in this file that
        led there (a block of an imported file), or else the import that brought it in."""
        related = [(err.span, "the error is here")] if err.span and err.span.file != result.path else []
        related += [(s, m) for s, m in err.notes]
        span, where = err.span, ""
        if span is None or span.file != result.path:
            where = f" (at {err.span})" if err.span else ""
            span = next((s for s, _ in err.notes if s.file == result.path), None)
            if span is None:
                span = self._import_span(err.span, result)
        hints = "".join(f"\nhint: {h}" for h in err.hints)
        origin = err.span if err.span is not None and err.span.file != result.path else None
        return Diagnostic(span, err.message + where + hints, "error", type(err).__name__, tuple(related),
                          origin, err.message + hints)

    def _import_span(self, target: Span | None, result: Analysis) -> Span:
        imports = [i for i in result.module.items if isinstance(i, ast.Import)] if result.module else []
        if target is not None:
            for item in imports:
                chain = _reaches(result.program, Path(result.path).parent / item.path, target.file) \
                    if result.program else None
                if chain or str((Path(result.path).parent / item.path).resolve()) == target.file:
                    return item.span
        return imports[0].span if imports else Span(result.path, 1, 1, 1, 2)


def borrowed(analysis: Analysis, path: str) -> list[Diagnostic]:
    """The errors a network's check hit inside the file `path` (a file of blocks it imports),
    placed there, pointing back at the network's line that led to them."""
    name = Path(analysis.path).name
    return [Diagnostic(d.origin, f"{d.detail}\n(when {name} instantiates it)", d.severity, d.code,
                       ((d.span, f"instantiated from {name}"),))
            for d in analysis.diagnostics if d.origin is not None and d.origin.file == path]


def _reaches(program: Program, path: Path, file: str) -> bool:
    """Whether the module at `path` is `file` or imports it, directly or not."""
    try:
        info = program.modules.get(str(path.resolve()))
    except OSError:
        return False
    todo: list[ModuleInfo] = [info] if info else []
    seen: set[int] = set()
    while todo:
        m = todo.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        if m.module.path == file:
            return True
        todo += m.imports
    return False


def unused_bindings(module: ast.Module, symbols: SymbolIndex) -> list[Diagnostic]:
    """Warnings for a name assigned (outside any loop) and never read: usually a typo or a
    forgotten `output`. Loop bodies are left out, as the next iteration may read the name."""
    in_loop: set[Span] = set()

    def mark(stmts: tuple[ast.Stmt, ...], loop: bool) -> None:
        for s in stmts:
            if isinstance(s, ast.Assign) and loop:
                in_loop.add(s.span)
            elif isinstance(s, ast.For):
                mark(s.body, True)
            elif isinstance(s, ast.If):
                mark(s.then, loop)
                mark(s.orelse, loop)

    for item in module.items:
        if isinstance(item, ast.BlockDef | ast.NetworkDef):
            mark(item.body, False)
    used = {d for _, d, _ in symbols.occurrences if d is not None}
    counts: dict[Definition, int] = defaultdict(int)
    for _, d, _ in symbols.occurrences:
        if d is not None:
            counts[d] += 1
    out = []
    for d in symbols.definitions:
        if d.kind == "binding" and d in used and counts[d] == 1 and d.full not in in_loop \
                and not d.name.startswith("_") and d.span.file == module.path:
            out.append(Diagnostic(d.span, f"'{d.name}' is assigned but never used", "warning", "unused"))
    return out


def _dedupe(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[Span, str]] = set()
    out = []
    for d in sorted(diagnostics, key=lambda d: (d.span.line, d.span.col, d.severity)):
        if (d.span, d.message) not in seen:
            seen.add((d.span, d.message))
            out.append(d)
    return out

