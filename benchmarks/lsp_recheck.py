"""How long the language server takes to re-check ResNet-152 after an edit, warm.

    python benchmarks/lsp_recheck.py [--rounds 15] [--json out.json]

Two measurements (benchmarks/harness.py rows; target: 300 ms per re-check):
  in-process  `Analyzer.analyse` on the edited text (imports parsed once and cached), against
              a cold check (a fresh Analyzer: imports parsed again) and against `netc check`'s
              own path (`api.check_file`), taking turns round by round; paired ratios to the
              warm re-check with bootstrap 95% intervals;
  over stdio  a real client (pygls' LanguageClient) runs `python -m netc lsp`, sends didChange
              and times until publishDiagnostics arrives, less the server's debounce delay.

Every call checks a text no call has checked before (the number of classes changes), so
no check can be skipped. Needs the `lsp` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness import Bench, add_common_arguments, interleave

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "resnet152.net"


def edits(text: str) -> Iterator[str]:
    """Endless edits: each changes the number of classes, so the check can never be skipped."""
    for i in itertools.count(1):
        yield text.replace("classes: int = 1000", f"classes: int = {1000 + i}")


def in_process(bench: Bench, rounds: int, warmup: int) -> None:
    from netc import api
    from netc.lsp.analysis import Analyzer

    path = str(EXAMPLE.resolve())
    text = EXAMPLE.read_text()
    warm = Analyzer()
    warm.analyse(path, text)

    texts = {name: edits(text) for name in ("warm", "cold", "api")}  # one stream of new texts each

    def warm_recheck() -> None:
        result = warm.analyse(path, next(texts["warm"]))
        assert not result.diagnostics, result.diagnostics

    def cold_check() -> None:
        Analyzer().analyse(path, next(texts["cold"]))

    def check_file() -> None:
        api.check_file(path, source=next(texts["api"]))

    times = interleave({"warm re-check": warm_recheck, "cold check (imports parsed)": cold_check,
                        "api.check_file": check_file}, rounds, warmup)
    case = f"{EXAMPLE.name}, in process"
    bench.time_row(case, "warm re-check ms", times["warm re-check"], target=300)
    for name in ("cold check (imports parsed)", "api.check_file"):
        bench.time_row(case, f"{name} ms", times[name])
        bench.ratio_row(case, f"{name} / warm re-check", times[name], times["warm re-check"])


async def over_stdio(bench: Bench, rounds: int) -> None:
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
    for version, edited in zip(range(2, rounds + 2), edits(text)):
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
    bench.time_row(f"{EXAMPLE.name}, over stdio", f"didChange to publishDiagnostics, less the "
                   f"{DEBOUNCE_SECONDS * 1e3:.0f} ms debounce, ms", times, target=300, max_ms=max(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, rounds=15, warmup=1)
    args = parser.parse_args()
    bench = Bench("lsp_recheck")
    in_process(bench, args.rounds, args.warmup)
    asyncio.run(over_stdio(bench, args.rounds))
    bench.finish(args.json)


if __name__ == "__main__":
    main()
