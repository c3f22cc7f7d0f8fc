"""The benchmark harness's statistics and process measurement (benchmarks/harness.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import harness

BENCH = Path(harness.__file__).resolve().parent


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


def test_rotation_starts_one_further_each_round() -> None:
    order = list(harness.rotation(["a", "b", "c"], 3))
    assert order == [(0, "a"), (0, "b"), (0, "c"), (1, "b"), (1, "c"), (1, "a"), (2, "c"), (2, "a"), (2, "b")]
    assert harness.interleave({}, rounds=3) == {}


def test_rows_targets_and_single_samples() -> None:
    bench = harness.Bench("demo", "python demo.py")
    fast = bench.estimate_row("c", "speed-up", [6.0, 6.5, 7.0, 6.2, 6.8], target=5.0, higher_is_better=True)
    assert (fast.target, fast.verdict) == (">= 5", "PASS")
    slow = bench.time_row("c", "re-check ms", [0.4, 0.5, 0.45], target=300)  # seconds in, ms out
    assert slow.value == pytest.approx(450) and slow.verdict == "FAIL" and slow.extra["p90"] > slow.value
    one = bench.time_row("c", "cold s", [1.5], scale=1, unit="s", samples=[1.5])  # raw values kept in the JSON
    assert one.extra["samples"] == [1.5]
    assert one.low is None and one.high is None and one.cells()[2] == "1.5 s"
    text = harness.markdown([bench.to_json()])
    bench.row("c", "max |diff|", 1e-7)
    assert "| c | max \\|diff\\| | 1e-07 |  |  |" in harness.markdown([bench.to_json()])
    assert text.count("\n| c |") == 3


def test_run_all_covers_every_script_and_writes_the_block(tmp_path: Path) -> None:
    import run_all

    scripts = {name: extra for _, name, extra in run_all.BENCHMARKS}
    on_disk = {p.name for p in BENCH.glob("*.py")}
    assert on_disk - run_all.HELPERS == set(scripts), "every benchmark script runs in run_all.py"
    results = tmp_path / "results"
    results.mkdir()
    for name in ("recur_hoisting", "cold_compile"):
        bench = harness.Bench(name, f"python benchmarks/{name}.py")
        bench.row("case", f"{name} metric", 1.0)
        (results / f"{name}.json").write_text(json.dumps(bench.to_json()))
    readme = tmp_path / "README.md"
    readme.write_text(f"# B\n\nprose\n\n{run_all.BEGIN}\nSTALE TABLE\n{run_all.END}\n\nafter\n")
    run_all.write_readme(results, readme)
    text = readme.read_text()
    assert "STALE TABLE" not in text and text.startswith("# B\n\nprose") and text.endswith("after\n")
    assert text.index("cold_compile metric") < text.index("recur_hoisting metric")  # BENCHMARKS' order


def test_every_script_has_help_json_and_its_quick_setting() -> None:
    """`--help` of every benchmark (run side by side: the torch ones take seconds to import)."""
    import run_all

    procs = {name: subprocess.Popen([sys.executable, str(BENCH / name), "--help"], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
             for _, name, _ in run_all.BENCHMARKS}
    for _, name, extra in run_all.BENCHMARKS:
        out = procs[name].communicate(timeout=120)[0]
        assert procs[name].returncode == 0, out
        assert "--json" in out, name
        for flag in extra:
            if flag.startswith("--"):
                assert flag in out, (name, flag)
        source = (BENCH / name).read_text()
        assert "harness" in source and ".finish(" in source, f"{name} writes its rows through the harness"
