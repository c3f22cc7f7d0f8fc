"""The language server, driven by a real LSP client (pygls' LanguageClient) that starts
`python -m netc lsp` as a subprocess and talks JSON-RPC over its stdin/stdout. One server
serves the whole module."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the 'lsp' extra (pygls) is not installed: pip install 'netc[lsp]'")

from lsprotocol import types as T
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


class Session:
    """A client with its own event loop in a thread, so tests call it synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = LanguageClient("netc-tests", "1")
        self.diagnostics: dict[str, list[T.Diagnostic]] = {}
        self.changed = threading.Condition()

        @self.client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: T.PublishDiagnosticsParams) -> None:
            with self.changed:
                self.diagnostics[params.uri] = list(params.diagnostics)
                self.changed.notify_all()

        self.run(self.client.start_io(sys.executable, "-m", "netc", "lsp", cwd=str(ROOT)))
        result = self.run(self.client.initialize_async(T.InitializeParams(
            process_id=None, root_uri=from_fs_path(str(ROOT)), capabilities=T.ClientCapabilities())))
        self.capabilities = result.capabilities
        self.client.initialized(T.InitializedParams())
        self.versions: dict[str, int] = {}

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        """Run a notification method of the client on its loop."""
        self.loop.call_soon_threadsafe(fn, *args)

    def open(self, path: Path, text: str | None = None) -> str:
        uri = from_fs_path(str(path))
        self.versions[uri] = 1
        with self.changed:
            self.diagnostics.pop(uri, None)
        self.call(self.client.text_document_did_open, T.DidOpenTextDocumentParams(
            T.TextDocumentItem(uri, "netc", 1, path.read_text() if text is None else text)))
        return uri

    def replace(self, uri: str, text: str) -> None:
        """Send the whole new text as one change (as an editor's full sync does)."""
        self.versions[uri] += 1
        with self.changed:
            self.diagnostics.pop(uri, None)
        self.call(self.client.text_document_did_change, T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            [T.TextDocumentContentChangeWholeDocument(text=text)]))

    def wait_diagnostics(self, uri: str, timeout: float = 30, count: int | None = None) -> list[T.Diagnostic]:
        """The next diagnostics published for `uri` (with `count`: the first list that long)."""
        def ready() -> bool:
            return uri in self.diagnostics and (count is None or len(self.diagnostics[uri]) == count)

        with self.changed:
            assert self.changed.wait_for(ready, timeout), "no diagnostics published"
            return self.diagnostics[uri]

    def hover(self, uri: str, line: int, col: int) -> str | None:
        """Hover at a 1-based line and column."""
        result = self.run(self.client.text_document_hover_async(T.HoverParams(
            T.TextDocumentIdentifier(uri), T.Position(line - 1, col - 1))))
        return None if result is None else result.contents.value

    def close(self) -> None:
        self.run(self.client.shutdown_async(None))
        self.client.exit(None)
        self.run(self.client.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def lsp() -> Iterator[Session]:
    session = Session()
    yield session
    session.close()


def position(text: str, needle: str, offset: int = 0, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of `needle` in text, plus `offset` columns."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col + offset


def test_capabilities(lsp: Session) -> None:
    caps = lsp.capabilities
    assert caps.hover_provider and caps.definition_provider and caps.references_provider
    assert caps.completion_provider is not None and caps.document_symbol_provider
    assert caps.folding_range_provider


def test_clean_example_has_no_diagnostics_and_hover_shows_shapes(lsp: Session) -> None:
    path = EXAMPLES / "resnet50.net"
    text = path.read_text()
    uri = lsp.open(path)
    assert lsp.wait_diagnostics(uri) == []
    # The stem: `h = image -> conv2d(64, kernel=7, stride=2, ...) -> ... -> maxpool(...)`.
    hover = lsp.hover(uri, *position(text, "h = image"))
    assert "f32[N, 64, 56, 56]" in hover
    # A layer call: the op's signature and the layer it made, with parameters and FLOPs.
    hover = lsp.hover(uri, *position(text, "conv2d(64, kernel=7", 2))
    assert "conv2d(x, filters, kernel" in hover
    assert "`conv2d0` (conv2d) -> `f32[N, 64, 112, 112]`; 9,408 parameters" in hover
    # A value inside a block called 16 times: every shape it takes.
    hover = lsp.hover(uri, *position(text, "return relu(h + skip)", 12))
    assert "4 types in 16 evaluations" in hover and "f32[N, 2048, 7, 7]" in hover and "f32[N, 256, 56, 56]" in hover


def test_hover_in_recurrent_and_attention_examples(lsp: Session) -> None:
    path = EXAMPLES / "seq2seq_attention.net"
    text = path.read_text()
    uri = lsp.open(path)
    assert lsp.wait_diagnostics(uri) == []
    hover = lsp.hover(uri, *position(text, "enc, final = recur"))
    assert "`enc`: `f32[T, N, 256]`" in hover
    hover = lsp.hover(uri, *position(text, "output ids", len("output ")))
    assert "i64[" in hover

    path = EXAMPLES / "mnist_mlp.net"
    text = path.read_text()
    uri = lsp.open(path)
    assert lsp.wait_diagnostics(uri) == []
    hover = lsp.hover(uri, *position(text, "dense(", 1))
    assert "dense(x, units" in hover and "`dense0` (dense) -> `f32[N, 500]`; 392,500 parameters" in hover


def test_definition_across_imports_and_references(lsp: Session) -> None:
    path = EXAMPLES / "resnet152.net"
    text = path.read_text()
    uri = lsp.open(path)
    assert lsp.wait_diagnostics(uri) == []
    line, col = position(text, "stages([3")
    location = lsp.run(lsp.client.text_document_definition_async(T.DefinitionParams(
        T.TextDocumentIdentifier(uri), T.Position(line - 1, col))))
    target = EXAMPLES / "blocks" / "resnet.net"
    assert location.uri == from_fs_path(str(target.resolve()))
    defined = target.read_text().split("\n")[location.range.start.line]
    assert defined.startswith("block stages(")
    assert defined[location.range.start.character:location.range.end.character] == "stages"
    # A binding: `h` in the output refers to the `h = ...` line.
    line, col = position(text, "output logits = h", len("output logits = "))
    location = lsp.run(lsp.client.text_document_definition_async(T.DefinitionParams(
        T.TextDocumentIdentifier(uri), T.Position(line - 1, col - 1))))
    assert location.range.start.line + 1 == position(text, "h = image")[0]
    refs = lsp.run(lsp.client.text_document_references_async(T.ReferenceParams(
        context=T.ReferenceContext(include_declaration=True), text_document=T.TextDocumentIdentifier(uri),
        position=T.Position(location.range.start.line, location.range.start.character))))
    assert sorted(r.range.start.line + 1 for r in refs) == [position(text, "h = image")[0], line]
    # The block file itself, opened beside: its values as ResNet-152 instantiates them.
    blocks = target.read_text()
    blocks_uri = lsp.open(target)
    lsp.wait_diagnostics(blocks_uri)
    hover = lsp.hover(blocks_uri, *position(blocks, "return relu(h + shortcut(x, 4 * mid", 12))
    assert "4 types in 50 evaluations" in hover and "f32[N, 2048, 7, 7]" in hover  # 3 + 8 + 36 + 3 blocks
    # An error made in the block file shows there too, found by checking ResNet-152.
    broken = blocks.replace("conv2d(4 * mid, kernel=1, bias=false)",
                            "conv2d(4 * mid, kernel=1, bias=false) -> flatten")
    with lsp.changed:
        lsp.diagnostics.pop(uri, None)
    lsp.replace(blocks_uri, broken)
    [d] = lsp.wait_diagnostics(uri)
    assert "resnet.net" in d.message and d.range.start.line + 1 == position(text, "stages([3")[0]
    [d] = lsp.wait_diagnostics(blocks_uri, count=1)
    assert "(when resnet152.net instantiates it)" in d.message
    assert d.range.start.line + 1 == position(broken, "h + shortcut(x, 4 * mid")[0]
    with lsp.changed:
        lsp.diagnostics.pop(uri, None)
    lsp.replace(blocks_uri, blocks)
    assert lsp.wait_diagnostics(uri) == []
    assert lsp.wait_diagnostics(blocks_uri, count=0) == []


def test_completion(lsp: Session) -> None:
    path = EXAMPLES / "mnist_mlp.net"
    text = path.read_text()
    uri = lsp.open(path)
    lsp.wait_diagnostics(uri)
    typed = text + "\nblock extra(x) {\n  return x -> conv2d(8, pad="
    lsp.replace(uri, typed)
    lsp.wait_diagnostics(uri)
    last = typed.count("\n")
    end = T.Position(last, len(typed.split("\n")[-1]))

    def labels(pos: T.Position) -> dict[str, T.CompletionItem]:
        result = lsp.run(lsp.client.text_document_completion_async(T.CompletionParams(
            T.TextDocumentIdentifier(uri), pos)))
        return {i.label: i for i in result.items}

    assert {"same", "valid"} <= set(labels(end))
    typed = typed.removesuffix("pad=")
    lsp.replace(uri, typed)
    items = labels(T.Position(last, len(typed.split("\n")[-1])))
    assert {"kernel=", "stride=", "pad=", "act="} <= set(items) and "filters=" in items
    typed = typed.removesuffix("conv2d(8, ")
    lsp.replace(uri, typed)
    items = labels(T.Position(last, len(typed.split("\n")[-1])))
    assert items["conv2d"].insert_text == "conv2d(${1:filters}, ${2:kernel})$0"
    assert items["conv2d"].insert_text_format == T.InsertTextFormat.Snippet
    assert "f32" in items


def test_shape_error_appears_and_disappears(lsp: Session) -> None:
    path = EXAMPLES / "lenet5.net"
    good = path.read_text()
    uri = lsp.open(path)
    assert lsp.wait_diagnostics(uri) == []
    bad = good.replace("dense(120", "dense(120) -> conv2d(4, kernel=3")
    assert bad != good
    lsp.replace(uri, bad)
    diagnostics = lsp.wait_diagnostics(uri)
    assert len(diagnostics) == 1
    d = diagnostics[0]
    assert d.severity == T.DiagnosticSeverity.Error and "conv2d" in d.message
    line, col = position(bad, "conv2d(4, kernel=3")
    assert (d.range.start.line + 1, d.range.start.character + 1) == (line, col)
    lsp.replace(uri, good)
    assert lsp.wait_diagnostics(uri) == []


def test_several_errors_and_a_warning(lsp: Session, tmp_path: Path) -> None:
    text = ("network A {\n  input x: f32[N, 8]\n  output y = x -> dense(4) -> conv2d(2, kernel=3)\n}\n"
            "network B {\n  input x: f32[N, 8]\n  unused = x -> relu\n  output y = x -> dense(4, act=nope)\n}\n"
            "network C(width: int) {\n  input x: f32[N, 8]\n  output y = x -> dense(width)\n}\n")
    path = tmp_path / "several.net"
    path.write_text(text)
    uri = lsp.open(path)
    found = [(d.range.start.line + 1, d.severity) for d in lsp.wait_diagnostics(uri)]
    E, W = T.DiagnosticSeverity.Error, T.DiagnosticSeverity.Warning
    assert found == [(3, E), (7, W), (8, E), (10, W)]


def test_syntax_error_and_import_error(lsp: Session, tmp_path: Path) -> None:
    (tmp_path / "lib.net").write_text("block b(x) {\n  return x -> dense(4) -> conv2d(2, kernel=3)\n}\n")
    text = 'import "lib.net"\nnetwork Net {\n  input x: f32[N, 8]\n  output y = b(x)\n}\n'
    path = tmp_path / "main.net"
    path.write_text(text)
    uri = lsp.open(path)
    [d] = lsp.wait_diagnostics(uri)
    assert d.range.start.line == 3 and "lib.net:2" in d.message  # at the call, naming the place
    lsp.replace(uri, text.replace("output y", "output y ="))
    [d] = lsp.wait_diagnostics(uri)
    assert d.range.start.line == 3 and "unexpected" in d.message


def test_editing_an_imported_file_rechecks_its_importer(lsp: Session, tmp_path: Path) -> None:
    lib = "block b(x) {\n  return x -> dense(4)\n}\n"
    (tmp_path / "lib2.net").write_text(lib)
    text = 'import "lib2.net"\nnetwork Net {\n  input x: f32[N, 8]\n  output y = b(x) -> dense(2)\n}\n'
    (tmp_path / "main2.net").write_text(text)
    main = lsp.open(tmp_path / "main2.net")
    assert lsp.wait_diagnostics(main) == []
    lib_uri = lsp.open(tmp_path / "lib2.net")
    assert lsp.wait_diagnostics(lib_uri) == []
    with lsp.changed:
        lsp.diagnostics.pop(main, None)
    lsp.replace(lib_uri, lib.replace("dense(4)", "conv2d(4, kernel=3)"))  # unsaved: the buffer counts
    [d] = lsp.wait_diagnostics(main)
    assert d.range.start.line == 3 and "lib2.net:2" in d.message


def test_symbols_and_folding(lsp: Session) -> None:
    path = EXAMPLES / "resnet50.net"
    uri = lsp.open(path)
    lsp.wait_diagnostics(uri)
    symbols = lsp.run(lsp.client.text_document_document_symbol_async(T.DocumentSymbolParams(
        T.TextDocumentIdentifier(uri))))
    assert [(s.name, s.kind) for s in symbols] == [("bottleneck", T.SymbolKind.Function),
                                                    ("ResNet50", T.SymbolKind.Class)]
    assert {c.name for c in symbols[1].children} == {"image", "logits"}
    folds = lsp.run(lsp.client.text_document_folding_range_async(T.FoldingRangeParams(
        T.TextDocumentIdentifier(uri))))
    assert any(f.kind == T.FoldingRangeKind.Comment and f.start_line == 0 for f in folds)
    assert len([f for f in folds if f.kind is None]) >= 4  # two definitions, two nested for loops


def test_survives_half_typed_input(lsp: Session) -> None:
    """Truncations and mutations of an example: the server answers every request after each."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import fuzz
    finally:
        sys.path.pop(0)
    import random

    text = (EXAMPLES / "seq2seq_attention.net").read_text()
    rng = random.Random(0)
    chooser = fuzz.RandomChooser(random.Random(1))
    path = EXAMPLES / "seq2seq_attention.net"
    uri = lsp.open(path)
    lsp.wait_diagnostics(uri)
    variants = [text[:n] for n in range(0, len(text), max(len(text) // 12, 1))]
    variants += [fuzz.mutate(chooser, text.encode()).decode("utf-8", "replace") for _ in range(12)]
    for variant in variants:
        lsp.replace(uri, variant)
        lsp.wait_diagnostics(uri)
        lines = variant.split("\n")
        line = rng.randrange(len(lines))
        pos = T.Position(line, rng.randrange(len(lines[line]) + 1))
        lsp.run(lsp.client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), pos)))
        lsp.run(lsp.client.text_document_completion_async(T.CompletionParams(T.TextDocumentIdentifier(uri), pos)))
        lsp.run(lsp.client.text_document_definition_async(T.DefinitionParams(T.TextDocumentIdentifier(uri), pos)))
    lsp.replace(uri, text)
    assert lsp.wait_diagnostics(uri) == []
