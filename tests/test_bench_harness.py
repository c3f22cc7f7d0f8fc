"""The benchmark harness's statistics and process measurement (benchmarks/harness.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import harness


def test_paired_ratio_and_verdicts() -> None:
    a = [2.0, 2.2, 1.8, 2.1, 1.9, 2.0, 2.05]
    b = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.0]
    r = harness.paired_ratio(a, b)
    assert r.value == pytest.approx(2.0)
    assert r.low <= r.value <= r.high
    assert harness.verdict(r, 3.0) == "PASS"
    assert harness.verdict(r, 1.5) == "FAIL"
    assert harness.verdict(harness.Estimate(1.0, 0.9, 1.1, 10), 1.0) == "TIE"
    assert harness.verdict(r, 1.5, higher_is_better=True) == "PASS"
    with pytest.raises(ValueError):
        harness.paired_ratio([1.0], [1.0, 2.0])


def test_interleave_rotates_and_counts() -> None:
    calls: list[str] = []
    times = harness.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=4, warmup=1)
    assert len(times["a"]) == len(times["b"]) == 4
    assert calls[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # after one warm-up call each


def test_run_process_reports_peak_memory() -> None:
    small = harness.run_process([sys.executable, "-c", "pass"])
    big = harness.run_process([sys.executable, "-c", "b = b'x' * (200 * 2**20)"])
    assert small.returncode == big.returncode == 0
    assert big.max_rss_bytes - small.max_rss_bytes > 150 * 2**20
    failed = harness.run_process([sys.executable, "-c", "raise SystemExit(3)"])
    assert failed.returncode == 3


def test_markdown_table() -> None:
    bench = harness.Bench("demo", "python demo.py")
    bench.row("case", "ratio", 0.5, 0.4, 0.6, target="<= 1", verdict="PASS")
    text = harness.markdown([bench.to_json()])
    assert "| case | ratio | 0.5 (0.4-0.6) | <= 1 | PASS |" in text
    assert "`python demo.py`" in text
