"""How long the language server takes to re-check ResNet-152 after an edit, warm.

Two measurements:
  in-process  `Analyzer.analyse` on the edited text (imports parsed once and cached), against
              a cold check (a fresh Analyzer: imports parsed again) and against `netc check`'s
              own path (`api.check_file`), interleaved, medians;
  over stdio  a real client (pygls' LanguageClient) runs `python -m netc lsp`, sends didChange
              and times until publishDiagnostics arrives, less the server's debounce delay.

Run: .venv/bin/python benchmarks/lsp_recheck.py [--rounds 15]
The machine may be shared: read the ratios (measured side by side) as well as the times.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "resnet152.net"


def edits(text: str, rounds: int) -> list[str]:
    """Each round changes the number of classes, so the check can never be skipped."""
    return [text.replace("classes: int = 1000", f"classes: int = {1000 + i}") for i in range(1, rounds + 1)]


def in_process(rounds: int) -> None:
    from netc import api
    from netc.lsp.analysis import Analyzer

    path = str(EXAMPLE.resolve())
    text = EXAMPLE.read_text()
    warm = Analyzer()
    warm.analyse(path, text)
    times: dict[str, list[float]] = {"warm re-check": [], "cold check (imports parsed)": [], "api.check_file": []}
    for edited in edits(text, rounds):
        start = time.perf_counter()
        result = warm.analyse(path, edited)
        times["warm re-check"].append(time.perf_counter() - start)
        assert not result.diagnostics, result.diagnostics
        start = time.perf_counter()
        Analyzer().analyse(path, edited)
        times["cold check (imports parsed)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        api.check_file(path, source=edited)
        times["api.check_file"].append(time.perf_counter() - start)
    anchor = statistics.median(times["warm re-check"])
    print(f"in-process, {rounds} edits of {EXAMPLE.name}, medians:")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:30s} {med * 1e3:7.1f} ms  (x{med / anchor:.2f} of warm; min {min(values) * 1e3:.1f} ms)")


async def over_stdio(rounds: int) -> None:
    from lsprotocol import types as T
    from pygls.lsp.client import LanguageClient
    from pygls.uris import from_fs_path

    from netc.lsp.server import DEBOUNCE_SECONDS

    client = LanguageClient("bench", "1")
    arrived: asyncio.Queue = asyncio.Queue()

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: T.PublishDiagnosticsParams) -> None:
        arrived.put_nowait((time.perf_counter(), list(params.diagnostics)))

    await client.start_io(sys.executable, "-m", "netc", "lsp")
    await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities()))
    client.initialized(T.InitializedParams())
    uri = from_fs_path(str(EXAMPLE.resolve()))
    text = EXAMPLE.read_text()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "netc", 1, text)))
    await arrived.get()
    times = []
    for version, edited in enumerate(edits(text, rounds), 2):
        start = time.perf_counter()
        client.text_document_did_change(T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(uri=uri, version=version),
            [T.TextDocumentContentChangeWholeDocument(text=edited)]))
        done, diagnostics = await arrived.get()
        assert not diagnostics, diagnostics
        times.append(done - start - DEBOUNCE_SECONDS)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    print(f"over stdio, didChange -> publishDiagnostics less the {DEBOUNCE_SECONDS * 1e3:.0f} ms debounce: "
          f"median {statistics.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms ({rounds} edits)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    in_process(args.rounds)
    asyncio.run(over_stdio(args.rounds))


if __name__ == "__main__":
    main()
