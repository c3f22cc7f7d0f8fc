"""`netc lsp`: the language server (pygls over stdio).

Documents are checked off the event loop, in one worker thread, a short while after the
last keystroke (debounced), so the server keeps answering while a large network is
elaborated; a request about a document waits for its pending check. Every handler turns an
unexpected exception into an empty answer and a log line: half-typed input never stops
the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from netc import __version__
from netc.dsl import ast
from netc.dsl.errors import Span
from netc.lsp.analysis import Analysis, Analyzer, borrowed
from netc.lsp.complete import complete
from netc.lsp.hover import hover
from netc.lsp.symbols import Definition, name_span

DEBOUNCE_SECONDS = 0.15
WAIT_SECONDS = 10.0  # longest a request waits for the check of its document
log = logging.getLogger("netc.lsp")


class NetcServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("netc", __version__, text_document_sync_kind=T.TextDocumentSyncKind.Incremental)
        self.analyzer = Analyzer()
        self.results: dict[str, Analysis] = {}
        self.pending: dict[str, asyncio.Task] = {}
        # One worker: checks run in order and share the parse cache. Elaboration recurses
        # deeply (see compiler.elaborate.recursion_headroom), so the thread gets a big stack.
        previous = threading.stack_size(256 * 2**20)
        try:
            self.worker = ThreadPoolExecutor(1, thread_name_prefix="netc-check")
            self.worker.submit(lambda: None).result()  # start the thread now, with that stack
        finally:
            threading.stack_size(previous)

    def schedule(self, uri: str, delay: float) -> None:
        task = self.pending.get(uri)
        if task is not None and not task.done():
            task.cancel()
        self.pending[uri] = asyncio.ensure_future(self._check(uri, delay))

    async def _check(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        doc = self.workspace.get_text_document(uri)
        path = _path(uri)
        text = doc.source
        self.analyzer.overlays[path] = text
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.worker, self.analyzer.analyse, path, text)
        self.results[uri] = result
        log.info("checked %s in %.0f ms", path, result.seconds * 1e3)
        self.publish(uri)
        for other in list(self.results):  # open block files this network instantiates
            if other != uri and result.program is not None and _path(other) in result.program.modules:
                self.publish(other)

    def publish(self, uri: str) -> None:
        """A document's diagnostics; a file of blocks also gets the errors that open networks
        importing it hit inside its blocks."""
        result = self.results[uri]
        diagnostics = [_diagnostic(d) for d in result.diagnostics]
        if not result.graphs:
            for other in list(self.results.values()):
                if other is not result and other.program is not None and result.path in other.program.modules:
                    diagnostics += [_diagnostic(d) for d in borrowed(other, result.path)]
        doc = self.workspace.get_text_document(uri)
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(
            uri=uri, version=doc.version, diagnostics=diagnostics))

    async def current(self, uri: str) -> Analysis | None:
        """The analysis of the document as it is now (waiting for a pending check)."""
        task = self.pending.get(uri)
        if task is not None and not task.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), WAIT_SECONDS)
            task = self.pending.get(uri)  # a newer edit may have replaced it
            if task is not None and not task.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), WAIT_SECONDS)
        return self.results.get(uri)


server = NetcServer()


def _safe(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Log and swallow a handler's unexpected exception: answer nothing rather than fail."""
    if asyncio.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def run_async(ls: NetcServer, params: Any) -> Any:
            try:
                return await handler(ls, params)
            except Exception:
                log.exception("%s failed", handler.__name__)
                return None
        return run_async

    @functools.wraps(handler)
    def run(ls: NetcServer, params: Any) -> Any:
        try:
            return handler(ls, params)
        except Exception:
            log.exception("%s failed", handler.__name__)
            return None
    return run


# ---------------------------------------------------------------------- documents
@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
@_safe
def did_open(ls: NetcServer, params: T.DidOpenTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0.0)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
@_safe
def did_change(ls: NetcServer, params: T.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.schedule(uri, DEBOUNCE_SECONDS)
    path = _path(uri)
    ls.analyzer.overlays[path] = ls.workspace.get_text_document(uri).source
    for other, analysis in list(ls.results.items()):  # open documents that import this one
        if other != uri and analysis.program is not None and path in analysis.program.modules:
            ls.schedule(other, DEBOUNCE_SECONDS)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
@_safe
def did_save(ls: NetcServer, params: T.DidSaveTextDocumentParams) -> None:
    # Other open documents may import this one.
    for uri in list(ls.results):
        ls.schedule(uri, DEBOUNCE_SECONDS)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
@_safe
def did_close(ls: NetcServer, params: T.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    task = ls.pending.pop(uri, None)
    if task is not None:
        task.cancel()
    ls.results.pop(uri, None)
    ls.analyzer.overlays.pop(_path(uri), None)
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


# ---------------------------------------------------------------------- requests
@server.feature(T.TEXT_DOCUMENT_HOVER)
@_safe
async def on_hover(ls: NetcServer, params: T.HoverParams) -> T.Hover | None:
    analysis = await ls.current(params.text_document.uri)
    if analysis is None:
        return None
    line, col = params.position.line + 1, params.position.character + 1
    found = hover(analysis, line, col)
    if found is None and not analysis.graphs:
        # A file of blocks: its values are known where an open network instantiates them.
        path = analysis.path
        for other in list(ls.results.values()):
            if other is not analysis and other.program is not None and path in other.program.modules:
                found = hover(other, line, col, path, analysis.text)
                if found is not None:
                    break
    if found is None:
        return None
    text, span = found
    return T.Hover(T.MarkupContent(T.MarkupKind.Markdown, text), _range(span))


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
@_safe
async def on_definition(ls: NetcServer, params: T.DefinitionParams) -> T.Location | None:
    defn = await _definition_at(ls, params.text_document.uri, params.position)
    return _location(defn.span) if defn is not None else None


@server.feature(T.TEXT_DOCUMENT_REFERENCES)
@_safe
async def on_references(ls: NetcServer, params: T.ReferenceParams) -> list[T.Location] | None:
    defn = await _definition_at(ls, params.text_document.uri, params.position)
    if defn is None:
        return None
    found: dict[tuple, Span] = {}
    for analysis in list(ls.results.values()):
        indexes = [analysis.symbols] if analysis.symbols else []
        if analysis.program is not None:
            indexes += [ls.analyzer.module_symbols(info) for info in analysis.program.modules.values()
                        if info is not analysis.program.root]
        for index in indexes:
            for span in index.references(defn):
                if params.context.include_declaration or span != defn.span:
                    found[(span.file, span.line, span.col)] = span
    return [_location(s) for s in sorted(found.values(), key=lambda s: (s.file, s.line, s.col))]


async def _definition_at(ls: NetcServer, uri: str, pos: T.Position) -> Definition | None:
    analysis = await ls.current(uri)
    if analysis is None or analysis.symbols is None:
        return None
    hit = analysis.symbols.at(pos.line + 1, pos.character + 1)
    return hit[1] if hit is not None else None


_KINDS = {"function": T.CompletionItemKind.Function, "class": T.CompletionItemKind.Class,
          "keyword": T.CompletionItemKind.Keyword, "variable": T.CompletionItemKind.Variable,
          "value": T.CompletionItemKind.EnumMember, "constant": T.CompletionItemKind.Constant,
          "property": T.CompletionItemKind.Property, "type": T.CompletionItemKind.TypeParameter}


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["=", "(", ",", ">", ":"]))
@_safe
def on_completion(ls: NetcServer, params: T.CompletionParams) -> T.CompletionList:
    uri = params.text_document.uri
    text = ls.workspace.get_text_document(uri).source
    items = complete(ls.results.get(uri), text, params.position.line + 1, params.position.character + 1)
    out = []
    for item in items:
        out.append(T.CompletionItem(
            label=item.label, kind=_KINDS.get(item.kind), detail=item.detail or None,
            documentation=T.MarkupContent(T.MarkupKind.Markdown, item.doc) if item.doc else None,
            insert_text=item.snippet or None,
            insert_text_format=T.InsertTextFormat.Snippet if item.snippet else None))
    return T.CompletionList(is_incomplete=False, items=out)


@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@_safe
async def on_symbols(ls: NetcServer, params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
    analysis = await ls.current(params.text_document.uri)
    if analysis is None or analysis.module is None:
        return []
    lines = analysis.text.split("\n")
    out = []
    for item in analysis.module.items:
        if isinstance(item, ast.Import):
            continue
        kind = {ast.NetworkDef: T.SymbolKind.Class, ast.BlockDef: T.SymbolKind.Function,
                ast.Const: T.SymbolKind.Constant}[type(item)]
        children = []
        if isinstance(item, ast.NetworkDef):
            for stmt in item.body:
                if isinstance(stmt, ast.Input | ast.Output):
                    children.append(T.DocumentSymbol(
                        name=stmt.name, kind=T.SymbolKind.Variable, detail=type(stmt).__name__.lower(),
                        range=_range(stmt.span), selection_range=_range(name_span(lines, stmt.span, stmt.name))))
        out.append(T.DocumentSymbol(
            name=item.name, kind=kind, detail=type(item).__name__.removesuffix("Def").lower(),
            range=_range(item.span), selection_range=_range(name_span(lines, item.span, item.name)),
            children=children or None))
    return out


@server.feature(T.TEXT_DOCUMENT_FOLDING_RANGE)
@_safe
async def on_folding(ls: NetcServer, params: T.FoldingRangeParams) -> list[T.FoldingRange]:
    analysis = await ls.current(params.text_document.uri)
    if analysis is None:
        return []
    return folding_ranges(analysis.module, analysis.text)


def folding_ranges(module: ast.Module | None, text: str) -> list[T.FoldingRange]:
    """Definitions, `for`/`if` bodies (from the last version that parsed) and comment runs."""
    out: list[T.FoldingRange] = []

    def fold(span: Span, kind: str | None = None) -> None:
        if span.end_line > span.line:
            out.append(T.FoldingRange(start_line=span.line - 1, end_line=span.end_line - 1, kind=kind))

    def stmts(body: tuple[ast.Stmt, ...]) -> None:
        for s in body:
            if isinstance(s, ast.For):
                fold(s.span)
                stmts(s.body)
            elif isinstance(s, ast.If):
                fold(s.span)
                stmts(s.then)
                stmts(s.orelse)

    for item in module.items if module else ():
        fold(item.span)
        if isinstance(item, ast.BlockDef | ast.NetworkDef):
            stmts(item.body)
    start = None
    lines = text.split("\n")
    for i, line in enumerate([*lines, ""]):
        if line.lstrip().startswith("#"):
            start = i if start is None else start
        else:
            if start is not None and i - 1 > start:
                out.append(T.FoldingRange(start_line=start, end_line=i - 1, kind=T.FoldingRangeKind.Comment))
            start = None
    return out


# ---------------------------------------------------------------------- conversions
def _path(uri: str) -> str:
    path = to_fs_path(uri)
    return str(Path(path).resolve()) if path else uri


def _range(span: Span) -> T.Range:
    return T.Range(T.Position(max(span.line - 1, 0), max(span.col - 1, 0)),
                   T.Position(max(span.end_line - 1, 0), max(span.end_col - 1, 0)))


def _location(span: Span) -> T.Location:
    return T.Location(from_fs_path(span.file) or span.file, _range(span))


def _diagnostic(d: Any) -> T.Diagnostic:
    return T.Diagnostic(
        range=_range(d.span), message=d.message, source="netc", code=d.code or None,
        severity=T.DiagnosticSeverity.Error if d.severity == "error" else T.DiagnosticSeverity.Warning,
        related_information=[T.DiagnosticRelatedInformation(_location(s), m) for s, m in d.related] or None)


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="netc lsp: %(message)s")
    server.start_io()
