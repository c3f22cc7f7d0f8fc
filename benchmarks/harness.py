"""The one benchmark harness: thread policy, interleaved timing, bootstrap intervals,
whole-process timing with peak memory, and JSON + Markdown results.

Every script in `benchmarks/` uses it:

    from harness import Bench, ort_session, setup_threads
    setup_threads(2)                       # first, before onnxruntime or torch make a pool
    bench = Bench("recur_hoisting", __doc__)
    times = bench.interleave({"a": lambda: sa.run(None, feeds), "b": ...}, rounds=40)
    bench.ratio_row("Elman N=32", "hoisted / in-loop", times["hoisted"], times["in-loop"], target=1.0)
    bench.finish(args.json)                # prints the table; writes JSON when asked

Thread policy (one for all scripts). On a machine with few cores, runtimes that take
turns must not spin: an onnxruntime pool keeps its threads spinning for work after each
run and takes cores from whoever runs next (torch eager went from 50 ms to 859 ms; two
sessions with a pool each ran 1.4-3x slower than alone). So every onnxruntime session
made here runs on one process-wide pool (`set_global_thread_pool_sizes`,
`use_per_session_threads = False`), its config says `session.intra_op.allow_spinning =
0` (effective wherever a session has a pool of its own), and OpenMP (torch) is told
`OMP_WAIT_POLICY=PASSIVE` before it starts. Whole-process timings (compiles) run one
child at a time.

Statistics. Each round runs every candidate once, in an order that rotates from round to
round (`rotation`: in-process calls, whole processes and anything a script times itself
take turns the same way), so background load hits them alike. A ratio a/b is the median
of the per-round ratios (a and b ran in the same round) with a bootstrap 95% interval; a
target is PASS when the whole interval meets it, FAIL when none of it does, TIE when it
holds the target.

Settings. Scripts whose full run takes minutes have `--quick`, the setting
`run_all.py` uses; their full setting is the default (benchmarks/README.md lists both).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_THREADS: int | None = None
# OpenMP reads its wait policy when the library loads: set it at import, before a script
# imports torch (scripts import the harness first).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# --------------------------------------------------------------------------- thread policy
def setup_threads(threads: int) -> None:
    """Set the process-wide thread policy; call before any session or torch op exists."""
    global _THREADS
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if _THREADS is not None:
        if threads != _THREADS:
            raise RuntimeError(f"thread pool already set up with {_THREADS} threads")
        return
    _THREADS = threads
    import onnxruntime as ort

    ort.set_global_thread_pool_sizes(threads, 1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def ort_session(model: Any, optimized_path: str | Path | None = None, level: str = "all"):
    """A CPU session on the shared pool (optimisation level ALL unless `level` says
    otherwise). `model` is a ModelProto, serialized bytes or a path."""
    import onnxruntime as ort

    if _THREADS is None:
        raise RuntimeError("call harness.setup_threads(n) before making sessions")
    options = ort.SessionOptions()
    options.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[level]
    options.log_severity_level = 3
    options.use_per_session_threads = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- statistics
def bootstrap(values: Sequence[float], stat: Callable = statistics.median, n: int = 2000,
              seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of `stat` over `values`."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return (float(v[0]), float(v[0])) if len(v) else (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = rng.choice(v, (n, len(v)))
    stats = np.median(draws, axis=1) if stat is statistics.median else np.apply_along_axis(stat, 1, draws)
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class Estimate:
    """A median with its bootstrap 95% interval (in the unit of the samples)."""

    value: float
    low: float
    high: float
    n: int

    @staticmethod
    def of(samples: Sequence[float]) -> Estimate:
        low, high = bootstrap(samples)
        return Estimate(statistics.median(samples), low, high, len(samples))

    def text(self, fmt: str = ".3g") -> str:
        return f"{self.value:{fmt}} ({self.low:{fmt}}-{self.high:{fmt}})"


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """Median of the per-round ratios a[i] / b[i] with its bootstrap interval."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    return Estimate.of([x / y for x, y in zip(a, b)])


def percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def verdict(ratio: Estimate, target: float, higher_is_better: bool = False) -> str:
    low, high = (ratio.low, ratio.high)
    if higher_is_better:
        return "PASS" if low >= target else "FAIL" if high < target else "TIE"
    return "PASS" if high <= target else "FAIL" if low > target else "TIE"


# --------------------------------------------------------------------------- timing
def rotation(names: Sequence[str], rounds: int | None) -> Iterator[tuple[int, str]]:
    """(round, name) pairs: each round names every candidate once, starting one further
    along than the round before, so no candidate always runs first or after the same one.
    `rounds=None`: without end."""
    r = 0
    while rounds is None or r < rounds:
        for k in range(len(names)):
            yield r, names[(r + k) % len(names)]
        r += 1


def interleave(candidates: Mapping[str, Callable[[], Any]], rounds: int = 30, warmup: int = 3,
               min_seconds: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each candidate: `warmup` untimed calls each, then `rounds`
    rounds, each calling every candidate once in an order rotating round by round. With
    `min_seconds`, rounds continue until that much time has passed."""
    names = list(candidates)
    if not names:
        return {}
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    start_all = time.perf_counter()
    for i, (r, name) in enumerate(rotation(names, None)):
        if i % len(names) == 0 and r >= rounds and time.perf_counter() - start_all >= min_seconds:
            break
        start = time.perf_counter()
        candidates[name]()
        times[name].append(time.perf_counter() - start)
    return times


def interleave_sessions(sessions: Mapping[str, Any], feeds: Mapping[str, Any] | Mapping[str, Mapping[str, Any]],
                        rounds: int = 30, warmup: int = 3, per_session_feeds: bool = False) -> dict[str, list[float]]:
    """`interleave` over onnxruntime sessions run on `feeds` (or on `feeds[name]`)."""
    calls = {name: _runner(s, feeds[name] if per_session_feeds else feeds) for name, s in sessions.items()}
    return interleave(calls, rounds, warmup)


def _runner(session: Any, feeds: Mapping[str, Any]) -> Callable[[], Any]:
    feeds = dict(feeds)
    return lambda: session.run(None, feeds)


@dataclass
class ProcessRun:
    seconds: float
    max_rss_bytes: int
    returncode: int
    stdout: str = ""
    stderr: str = ""


# The measured command runs as the grandchild of this process, forked from a small launcher:
# Linux counts a child's resident memory from before its exec (a copy of the forking
# process) into ru_maxrss, so forking it from a benchmark process of 100+ MB would inflate it.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
sys.stderr.write(f"\\n@@harness {seconds!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}\\n")
"""


def run_process(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | Path | None = None
                ) -> ProcessRun:
    """Run `cmd` to completion: wall seconds (fork to exit) and its peak resident memory
    (`wait4`'s ru_maxrss, which Linux reports in KiB)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *cmd], stdout=out, stderr=err,
                              env=dict(env) if env is not None else None, cwd=cwd, check=False)
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        head, _, tail = stderr.rpartition("\n@@harness ")
        if not tail:
            raise RuntimeError(f"launcher failed (exit {proc.returncode}): {stderr[-500:]}")
        seconds, rss, code = tail.split()
        scale = 1 if sys.platform == "darwin" else 1024
        return ProcessRun(float(seconds), int(rss) * scale, int(code), out.read().decode(errors="replace"), head)


def interleave_processes(commands: Mapping[str, Sequence[str]], rounds: int, env: Mapping[str, str] | None = None,
                         warmup: int = 1) -> dict[str, list[ProcessRun]]:
    """Whole-process runs of each command, taking turns round by round (a failed run raises)."""
    names = list(commands)
    for _ in range(warmup):  # page cache, .pyc files, the parser cache
        for name in names:
            _checked(name, run_process(commands[name], env))
    runs: dict[str, list[ProcessRun]] = {name: [] for name in names}
    for _, name in rotation(names, rounds):
        runs[name].append(_checked(name, run_process(commands[name], env)))
    return runs


def _checked(name: str, run: ProcessRun) -> ProcessRun:
    if run.returncode != 0:
        tail = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{name}: exit {run.returncode}: {tail}")
    return run


# --------------------------------------------------------------------------- results
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cores": os.cpu_count(), "threads": _THREADS}
    with contextlib.suppress(OSError):
        info["load_average"] = os.getloadavg()[0]
    for module in ("numpy", "onnx", "onnxruntime", "torch"):
        if module in sys.modules:
            info[module] = getattr(sys.modules[module], "__version__", "?")
    return info


@dataclass
class Row:
    """One line of a results table: a metric, its value (with interval), an optional
    target and verdict."""

    benchmark: str
    case: str
    metric: str
    value: float
    low: float | None = None
    high: float | None = None
    unit: str = ""
    target: str = ""
    verdict: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[str]:
        interval = f" ({_num(self.low)}-{_num(self.high)})" if self.low is not None and self.high is not None else ""
        return [self.case, self.metric, f"{_num(self.value)}{interval}{(' ' + self.unit) if self.unit else ''}",
                self.target, self.verdict]


def _num(x: float | None) -> str:
    if x is None:
        return ""
    if x == 0 or 0.01 <= abs(x) < 1e5:
        return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
    return f"{x:.3g}"


class Bench:
    """Collects the rows of one benchmark script and writes them out."""

    def __init__(self, name: str, command: str | None = None):
        self.name = name
        self.command = command or " ".join(["python", *[os.path.relpath(sys.argv[0], ROOT)], *sys.argv[1:]])
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.started = time.time()

    def row(self, case: str, metric: str, value: float, low: float | None = None, high: float | None = None,
            unit: str = "", target: str = "", verdict: str = "", **extra: Any) -> Row:
        r = Row(self.name, case, metric, value, low, high, unit, target, verdict, extra)
        self.rows.append(r)
        print("  ".join(c for c in r.cells() if c), flush=True)
        return r

    def time_row(self, case: str, metric: str, seconds: Sequence[float], scale: float = 1e3, unit: str = "ms",
                 target: float | None = None, **extra: Any) -> Row:
        """Median of `seconds` (times `scale`, in `unit`) with its interval and 90th
        percentile; `target`, in the same unit, is an upper bound."""
        values = [s * scale for s in seconds]
        return self.estimate_row(case, metric, values, unit, target, p90=percentile(values, 90), **extra)

    def estimate_row(self, case: str, metric: str, values: Sequence[float], unit: str = "",
                     target: float | None = None, higher_is_better: bool = False, **extra: Any) -> Row:
        """Median of `values` with its bootstrap interval, judged against `target`; `extra`
        goes to the JSON row (e.g. `samples=`, the raw measurements)."""
        e = Estimate.of(values)
        goal = "" if target is None else f"{'>=' if higher_is_better else '<='} {target:g}"
        v = "" if target is None else verdict(e, target, higher_is_better)
        low, high = (e.low, e.high) if e.n > 1 else (None, None)  # one sample: no interval to show
        return self.row(case, metric, e.value, low, high, unit, goal, v, **extra)

    def ratio_row(self, case: str, metric: str, a: Sequence[float], b: Sequence[float], target: float | None = None,
                  higher_is_better: bool = False, **extra: Any) -> Row:
        """The paired ratio a[i] / b[i] (a and b measured in the same round)."""
        if len(a) != len(b):
            raise ValueError("paired samples must have the same length")
        return self.estimate_row(case, metric, [x / y for x, y in zip(a, b)], "", target, higher_is_better, **extra)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"note: {text}", flush=True)

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.name, "command": self.command, "machine": machine(),
                "seconds": time.time() - self.started, "notes": self.notes, "rows": [asdict(r) for r in self.rows]}

    def finish(self, json_path: str | Path | None = None) -> None:
        print()
        print(markdown([self.to_json()]))
        if json_path:
            Path(json_path).write_text(json.dumps(self.to_json(), indent=1) + "\n")


def markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """One Markdown table per benchmark result (as `Bench.to_json` makes them)."""
    parts = []
    for res in results:
        m = res.get("machine", {})
        threads = f"{m['threads']} threads, " if m.get("threads") else ""
        parts.append(f"**{res['benchmark']}**: `{res['command']}` ({threads}load average "
                     f"{m.get('load_average', float('nan')):.1f}, {res.get('seconds', 0):.0f} s)\n")
        header = ["case", "metric", "value (95% CI)", "target", "verdict"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in res["rows"]:
            cells = (c.replace("\n", " ").replace("|", "\\|") for c in Row(**r).cells())
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
        parts += [f"\n- {n}" for n in res.get("notes", [])]
        parts.append("")
    return "\n".join(parts)


def add_common_arguments(parser: Any, rounds: int = 30, quick: str | None = None, warmup: int = 3) -> None:
    """--threads, --rounds (alias --repeats), --warmup and --json; with `quick` (what the
    setting changes), also --quick, the setting run_all.py uses."""
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of the shared pool (default 2)")
    parser.add_argument("--rounds", "--repeats", type=int, default=rounds, dest="rounds",
                        help=f"interleaved rounds (default {rounds})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed calls of each candidate first "
                        f"(default {warmup})")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    if quick:
        parser.add_argument("--quick", action="store_true", help=f"the short setting run_all.py uses: {quick}")
