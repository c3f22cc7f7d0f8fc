"""Fuzzing, short and seeded: random programs and mutated examples either compile or raise a
`NetcError` that renders — never another exception, an invalid ONNX model, an error located
outside the file, or a hang. The generators and the oracle live in `tools/fuzz.py`, which
also runs long campaigns (`python tools/fuzz.py --count 100000 --jobs 2`).

A bug found here that belongs to a stage still being fixed goes into KNOWN_BUGS with a
reproducer; `test_known_bug_reproducers_still_reproduce` fails once it is fixed, so the
entry (and the fuzzers' tolerance of it) is then removed.
"""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("netc_fuzz", ROOT / "tools" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["netc_fuzz"] = fuzz
_spec.loader.exec_module(fuzz)

MUTATIONS_PER_EXAMPLE = 12
TIMEOUT = 30.0


@dataclass(frozen=True)
class KnownBug:
    kind: str  # crash | invalid-model | ...
    signature: str  # a fragment of the finding's signature (exception and file, or checker message)
    reproducer: str
    note: str


KNOWN_BUGS: list[KnownBug] = []

# Findings since fixed: each reproducer must now compile or raise a NetcError ("error"),
# and the expected outcome must not drift (an error that became a crash, or a model).
FIXED_BUGS = {
    "int() of an infinite float":
        ("error", "network M {\n  input x: f32[N, 4]\n  output y = x -> dense(int(1e308 * 10))\n}\n"),
    "range() longer than a C ssize_t":
        ("error", "network M {\n  input x: f32[N, 4]\n  output y = x -> dense(len(range(10**20)))\n}\n"),
    "slicing a compile-time list with step 0":
        ("error", "network M {\n  input x: f32[N, 4]\n  output y = x -> dense([1, 2, 3][::0][0])\n}\n"),
    "an input declared as an output":
        ("error", "network M {\n  input x: f32[N, 4]\n  output x\n}\n"),
    "an input rebound, then declared as an output":
        ("error", "network M {\n  input x: f32[N, 4]\n  x = x -> relu\n  output x\n}\n"),
    "name= of a block call is not checked to be a string":
        ("error", "block b(x) { return x -> dense(3) }\n"
                  "network M {\n  input x: f32[N, 4]\n  output y = b(x, name=3)\n}\n"),
    "a parameter size beyond float range in the parameter-bytes limit":
        ("error", "network M {\n  input x: f32[N, 4]\n  output y = x -> dense(10**400)\n}\n"),
    "the tensor-size limit message formats an int beyond float range":
        ("error", "network M {\n  input x: f32[N, 4]\n  output y = x + zeros(10**200, 10**200)\n}\n"),
    "a number beyond the tensor's integer dtype becomes a constant":
        ("error", "network M {\n  input x: i64[N, 4]\n  output y = x * 2**63\n}\n"),
    "a number beyond f16 becomes an infinite constant":
        ("error", "network M {\n  input x: f16[N, 4]\n  output y = x * 1e30\n}\n"),
    "float() of an int beyond float range":
        ("error", "network M {\n  input x: f32[N, 4]\n  output y = x * float(10**400)\n}\n"),
    "an index beyond int64 on a symbolic dim reaches the lowering":
        ("error", "network M {\n  input x: f32[N, 4]\n  output y = x[10**20]\n}\n"),
    "a slice bound beyond int64 on a static dim reaches the lowering":
        ("ok", "network M {\n  input x: f32[N, 4]\n  output y = x[:, 1:10**20]\n}\n"),
    "recursive block with nested calls: Python's recursion limit before max_depth":
        ("error", "block b(x) { return " + "relu(" * 20 + "b(x)" + ")" * 20 + " }\n"
                  "network M {\n  input x: f32[N, 4]\n  output y = b(x)\n}\n"),
    "a compile-time list repeated a billion times":
        ("error", "network M {\n  input x: f32[N, 4]\n  k = len([1] * 10**9)\n  output y = x\n}\n"),
    "a compile-time integer squared in a loop":
        ("error", "network M {\n  input x: f32[N, 4]\n  k = 3\n  for i in range(100) {\n    k = k * k\n  }\n"
                  "  output y = x\n}\n"),
}


def _known(outcome) -> KnownBug | None:
    for bug in KNOWN_BUGS:
        if outcome.kind == bug.kind and bug.signature in outcome.signature:
            return bug
    return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A private copy of examples/, so mutated files import the real blocks."""
    fuzz._init_worker(str(tmp_path_factory.mktemp("fuzz")), TIMEOUT, 0)
    return fuzz._STATE["workdir"]


def _check(data: bytes, path: Path):
    with fuzz.time_limit(TIMEOUT):
        return fuzz.check_text(data, path)


def _assert_fine(outcome, data: bytes) -> None:
    if outcome.kind in ("ok", "error") or _known(outcome):
        return
    text = data.decode("utf-8", errors="replace")
    pytest.fail(f"{outcome.kind}: {outcome.signature}\n--- input ---\n{text}\n--- detail ---\n{outcome.detail}")


class DrawChooser:
    """The generator's choices as Hypothesis draws, so a failing program shrinks (towards the
    first option of each choice, small numbers and 'no' for each chance)."""

    def __init__(self, draw):
        self.draw = draw

    def choice(self, items):
        return items[self.draw(st.integers(0, len(items) - 1))]

    def randint(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def chance(self, p: float) -> bool:
        return self.draw(st.integers(0, 999)) >= 1000 * (1 - p)


@settings(max_examples=120, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.data())
def test_generated_programs_never_crash(workdir: Path, data) -> None:
    program = fuzz.generate_program(DrawChooser(data.draw)).encode()
    _assert_fine(_check(program, workdir / fuzz.FUZZ_NAME), program)


def test_generated_programs_reach_the_back_end(workdir: Path) -> None:
    """The generator is useful only if many of its programs get through to compilation."""
    outcomes = [_check(fuzz.generate_program(fuzz.RandomChooser(random.Random(i))).encode(),
                       workdir / fuzz.FUZZ_NAME).kind for i in range(60)]
    assert outcomes.count("ok") >= 3, outcomes


EXAMPLES = fuzz.example_files()


@pytest.mark.parametrize("example", EXAMPLES, ids=[str(p.relative_to(fuzz.EXAMPLES)) for p in EXAMPLES])
def test_mutated_examples_never_crash(workdir: Path, example: Path) -> None:
    original = example.read_bytes()
    folder = workdir / example.parent.relative_to(fuzz.EXAMPLES)
    for k in range(MUTATIONS_PER_EXAMPLE):
        data = fuzz.mutate(fuzz.RandomChooser(random.Random(f"{example.name}:{k}")), original)
        _assert_fine(_check(data, folder / fuzz.FUZZ_NAME), data)


EDGE_TEXTS = {
    "empty": b"",
    "only-comment": b"# nothing here",
    "byte-order-mark": b"\xef\xbb\xbfnetwork M {\n  input x: f32[N, 4]\n  output y = x\n}\n",
    "crlf": b"network M {\r\n  input x: f32[N, 4]\r\n  output y = x $\r\n}\r\n",
    "lone-cr": b"network M {\r  input x: f32[N, 4]\r  output y = x $\r}\r",
    "form-feed": b"network M {\x0c\n  input x: f32[N, 4]\x0c output y = x $\n}\n",
    "nul": b"network M {\n  input x: f32[N, 4]\n  output y = x \x00\n}\n",
    "invalid-utf8": b"network M {\n  input x: f32[N, 4]\n  output y = x # \xff\xfe\n}\n",
    "tabs": b"network M {\n\tinput x: f32[N, 4]\n\toutput y = x -> dense(4, actt=relu)\n}\n",
    "line-separator": "network M {\n  input x: f32[N, 4]\n  # a\u2028comment\n  output y = x $\n}\n".encode(),
    "deep-parens": b"network M {\n input x: f32[N, 4]\n output y = " + b"(" * 5000 + b"x" + b")" * 5000 + b"\n}",
    "deep-pipeline": b"network M {\n input x: f32[N, 4]\n output y = x" + b" -> relu" * 5000 + b"\n}",
    "deep-unary": b"network M {\n input x: f32[N, 4]\n output y = " + b"-" * 5000 + b"x\n}",
    "long-int": b"network M {\n input x: f32[N, 4]\n output y = x -> dense(" + b"7" * 10000 + b")\n}",
    "huge-float": b"network M {\n input x: f32[N, 4]\n output y = x * 1e99999\n}",
    "escapes": b'network M {\n input x: f32[N, 4]\n output y = x -> dense(4, name="\\x41\\u00e9\\N{x}")\n}',
    "unterminated-at-eof": b'network M {\n input x: f32[N, 4]\n output y = x -> dense(4, name="',
    "long-line": b"network M {\n input x: f32[N, 4]\n output y = x" + b" + x" * 150 + b"\n}",
    "many-blocks": b"".join(b"block b%d(x) { return x -> relu }\n" % i for i in range(500)) + b"network M {\n",
    "float-overflow-args": b"network M {\n input x: f32[N, 4]\n output y = x -> leaky_relu(alpha=10**400)\n}",
    "import-nul": b'import "a\x00.net"\nnetwork M {\n input x: f32[N, 4]\n output y = x\n}',
    "import-long-name": b'import "' + b"a" * 5000 + b'.net"\nnetwork M {\n input x: f32[N, 4]\n output y = x\n}',
    "import-long-path": b'import "' + b"/".join([b"d" * 200] * 40) + b'.net"\nnetwork M {\n}',
    "huge-int-message": b"network M {\n input x: f32[N, 4]\n k = 2**2000\n output y = x -> dense(k * k * k)\n}",
}


@pytest.mark.parametrize("name", list(EDGE_TEXTS))
def test_edge_texts_never_crash(workdir: Path, name: str) -> None:
    data = EDGE_TEXTS[name]
    _assert_fine(_check(data, workdir / fuzz.FUZZ_NAME), data)


@pytest.mark.parametrize("note", list(FIXED_BUGS))
def test_fixed_bug_stays_fixed(workdir: Path, note: str) -> None:
    expected, reproducer = FIXED_BUGS[note]
    outcome = _check(reproducer.encode(), workdir / fuzz.FUZZ_NAME)
    assert outcome.kind == expected, f"{outcome.kind}: {outcome.signature}\n{outcome.detail}"


def test_known_bug_reproducers_still_reproduce(workdir: Path) -> None:
    """Each KNOWN_BUGS entry must describe what its reproducer does — or it masks nothing
    real; a fixed one fails here, so that it is removed (with the fuzzers' tolerance of it).
    One test over the list rather than one per entry: an empty list would show as a
    confusing 'got empty parameter set' skip."""
    for bug in KNOWN_BUGS:
        outcome = _check(bug.reproducer.encode(), workdir / fuzz.FUZZ_NAME)
        assert outcome.kind not in ("ok", "error"), f"{bug.note}: fixed; remove it from KNOWN_BUGS"
        assert outcome.kind == bug.kind and bug.signature in outcome.signature, \
            f"{bug.note}: now {outcome.kind}: {outcome.signature}"


def test_minimiser_keeps_the_finding() -> None:
    data = b"line one\nkeep BUG here\nline three\n"
    minimal = fuzz.minimise(data, lambda d: b"BUG" in d)
    assert minimal == b"BUG"


def test_fuzz_tool_runs(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz.py"), "--count", "24", "--seed", "7",
                           "--jobs", "1", "--out", str(tmp_path / "findings"), "--no-minimise"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    assert "executions: 24" in proc.stdout, proc.stdout + proc.stderr
    assert "crashes:" in proc.stdout
