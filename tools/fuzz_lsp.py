"""Fuzz the language server's analysis on half-typed input: truncations and the fuzzer's
mutations (tools/fuzz.py) of every example, each checked, then hovered, completed and
resolved at random positions. Any exception, or an "internal error" diagnostic, is a bug.

Run: .venv/bin/python tools/fuzz_lsp.py [--rounds 40] [--seed 0]
(tests/test_lsp.py runs a small sample of this through a real client and server.)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import fuzz  # noqa: E402

from netc.lsp.analysis import Analyzer  # noqa: E402
from netc.lsp.complete import complete  # noqa: E402
from netc.lsp.hover import hover  # noqa: E402


def variants(text: str, rng: random.Random, rounds: int) -> list[str]:
    chooser = fuzz.RandomChooser(rng)
    out = [text[:rng.randrange(len(text) + 1)] for _ in range(rounds // 2)]
    out += [fuzz.mutate(chooser, text.encode()).decode("utf-8", "replace") for _ in range(rounds - rounds // 2)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="variants per example")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    analyzer = Analyzer()
    failures = checked = 0
    start = time.perf_counter()
    for example in sorted((ROOT / "examples").rglob("*.net")):
        path = str(example.resolve())
        for text in variants(example.read_text(), rng, args.rounds):
            checked += 1
            try:
                result = analyzer.analyse(path, text)
                internal = [d for d in result.diagnostics if d.code == "internal"]
                assert not internal, internal[0].message
                lines = text.split("\n")
                for _ in range(5):
                    line = rng.randrange(len(lines)) + 1
                    col = rng.randrange(len(lines[line - 1]) + 1) + 1
                    hover(result, line, col)
                    complete(result, text, line, col)
                    if result.symbols is not None:
                        result.symbols.at(line, col)
            except Exception:
                failures += 1
                print(f"--- {example.name}: failure on this input:\n{text}\n{traceback.format_exc()}")
    print(f"{checked} variants, {failures} failures, {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
