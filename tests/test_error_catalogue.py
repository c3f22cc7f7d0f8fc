"""The error catalogue: every way a user can get netc wrong gives a located `NetcError` of the
right class, at the right line and column, with a useful message — never a crash.

Table 1 is data: each `tests/errors/*.net` file (and each folder `tests/errors/imports/*/`
with a `main.net`) holds malformed source with the expected error in a comment on the
offending line; see `tests/errors/README.md` for the annotation syntax. Table 2 (weight
files) and table 3 (run-time inputs) are generated here, because their inputs are binary.
Table 4 drives the command line: exit code 1, no traceback, no output file touched.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import netc
from netc.compiler.limits import DEFAULT_LIMITS, Limits
from netc.compiler.ops import REGISTRY
from netc.dsl.errors import (
    QUOTE_WIDTH,
    NetcError,
    NetcImportError,
    NetcInputError,
    NetcWeightsError,
)
from netc.runtime.reference import bind_inputs

ERRORS = Path(__file__).resolve().parent / "errors"

# `# E: Class@col: message` / `# E: Class@none: message`, then optional `# H: hint` parts.
_ERROR = re.compile(r"#\s*E:\s*(?P<cls>\w+)@(?P<col>\d+|none):\s*(?P<body>.*)$")
_NOTE = re.compile(r"#\s*N:\s*(?P<body>.*)$")
_HINT_SPLIT = re.compile(r"\s+#\s*H:\s*")
_DIRECTIVE = re.compile(r"^#!\s*(?P<key>\w+)\s*(?::\s*(?P<value>.*?))?\s*$")
# What a raw Lark message looks like; none of it may reach a user.
_RAW_LARK = ("__ANON", "$END", "Expected one of", "Unexpected token Token(", "lark.")


@dataclass
class Expected:
    cls: str
    file: Path
    line: int
    col: int | None  # None: the error has no location (e.g. a bad --set)
    message: str
    hints: list[str]


@dataclass
class Case:
    name: str
    entry: Path
    files: list[Path]
    expected: Expected
    notes: list[tuple[Path, int, str]] = field(default_factory=list)
    directives: dict[str, str] = field(default_factory=dict)


def _parse_case(name: str, entry: Path, files: list[Path]) -> Case:
    errors: list[Expected] = []
    notes: list[tuple[Path, int, str]] = []
    directives: dict[str, str] = {}
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            if path == entry and (m := _DIRECTIVE.match(line)):
                directives[m["key"]] = m["value"] or ""
                continue
            if "# E" in line:
                m = _ERROR.search(line)
                if not m:
                    raise ValueError(f"{path}:{lineno}: malformed error annotation: {line.strip()}")
                message, *hints = _HINT_SPLIT.split(m["body"].strip())
                col = None if m["col"] == "none" else int(m["col"])
                errors.append(Expected(m["cls"], path, lineno, col, message.strip(), hints))
            if (m := _NOTE.search(line)):
                notes.append((path, lineno, m["body"].strip()))
    if len(errors) != 1:
        raise ValueError(f"{name}: expected exactly one '# E:' annotation, found {len(errors)}")
    return Case(name, entry, files, errors[0], notes, directives)


def discover() -> list[Case]:
    cases = [_parse_case(p.stem, p, [p]) for p in sorted(ERRORS.glob("*.net"))]
    for folder in sorted(p for p in (ERRORS / "imports").iterdir() if (p / "main.net").is_file()):
        files = sorted(folder.rglob("*.net"))
        cases.append(_parse_case(f"imports/{folder.name}", folder / "main.net", files))
    return cases


CASES = discover()


def _limits(case: Case) -> Limits:
    if "limits" not in case.directives:
        return DEFAULT_LIMITS
    return Limits(**{**DEFAULT_LIMITS.__dict__, **json.loads(case.directives["limits"])})


def _skip_if_missing_ops(case: Case) -> None:
    for op in filter(None, (s.strip() for s in case.directives.get("requires", "").split(","))):
        if op not in REGISTRY:
            pytest.skip(f"op '{op}' is not in the registry yet")


def _compile(case: Case) -> None:
    settings = json.loads(case.directives.get("settings", "{}"))
    netc.compile_file(case.entry, network=case.directives.get("network"), settings=settings,
                      limits=_limits(case))


def _check(case: Case) -> None:
    settings = json.loads(case.directives.get("settings", "{}"))
    limits = _limits(case)
    if "network" in case.directives:
        program = netc.load(case.entry, limits=limits)
        netc.build_graph(program, case.directives["network"], settings, limits)
    else:
        netc.check_file(case.entry, settings=settings, limits=limits)


def _run(action, case: Case) -> NetcError:
    try:
        action(case)
    except NetcError as err:
        return err
    pytest.fail(f"{case.name}: no error raised; expected {case.expected.cls}: {case.expected.message}")


def _assert_matches(case: Case, err: NetcError) -> None:
    exp = case.expected
    where = f"{case.name}: got {type(err).__name__} at {err.span}: {err.message}"
    assert type(err).__name__ == exp.cls, where
    assert exp.message in err.message, where
    if exp.col is None:
        assert err.span is None, where
    else:
        assert err.span is not None, where
        assert Path(err.span.file).resolve() == exp.file.resolve(), where
        assert (err.span.line, err.span.col) == (exp.line, exp.col), where
    for path, line, text in case.notes:
        assert any(Path(s.file).resolve() == path.resolve() and s.line == line and text in msg
                   for s, msg in err.notes), f"{case.name}: no note '{text}' at line {line}: {err.notes}"


def _assert_rendered(case: Case, err: NetcError) -> None:
    exp = case.expected
    rendered = err.render()
    lines = rendered.split("\n")
    for raw in _RAW_LARK:
        assert raw not in rendered, f"{case.name}: raw parser text in\n{rendered}"
    hints = [line.removeprefix("  hint: ") for line in lines if line.startswith("  hint: ")]
    for hint in exp.hints:
        assert any(hint in h for h in hints), f"{case.name}: no hint containing '{hint}' in\n{rendered}"
    if exp.col is None:
        assert lines[0].startswith("error: "), rendered
        return
    assert lines[0] == f"{err.span}: error: {err.message}", rendered
    source = exp.file.read_text(encoding="utf-8").split("\n")[exp.line - 1].rstrip()
    caret = lines[2]
    if len(source) > QUOTE_WIDTH:  # a long line is quoted as a window around the column
        window = lines[1][4:].removeprefix("...").removesuffix("...")
        assert window in source and len(window) == QUOTE_WIDTH, f"{case.name}: quoted window\n{rendered}"
        shown = caret.index("^") - 4 - (3 if lines[1][4:].startswith("...") else 0)
        assert source.index(window) + shown == exp.col - 1, f"{case.name}: caret not under column {exp.col}"
        return
    assert lines[1] == "    " + source, f"{case.name}: quoted line\n{rendered}"
    assert caret.strip().startswith("^") and caret.index("^") == 4 + exp.col - 1, \
        f"{case.name}: caret not under column {exp.col}\n{rendered}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_error_case(case: Case) -> None:
    _skip_if_missing_ops(case)
    # `check` and `compile` must agree on the first error; `#! compile` cases need compile
    # (one network chosen, parameters materialised).
    modes = [_compile] if "compile" in case.directives else [_check, _compile]
    first = None
    for mode in modes:
        err = _run(mode, case)
        _assert_matches(case, err)
        _assert_rendered(case, err)
        if first is not None:  # check and compile agree on the first error
            assert (type(err), err.span, err.message) == (type(first), first.span, first.message)
        first = err


def test_import_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a.net").symlink_to(tmp_path / "b.net")
    (tmp_path / "b.net").symlink_to(tmp_path / "a.net")
    main = tmp_path / "main.net"
    main.write_text('import "a.net"\nnetwork M {\n  input x: f32[N, 4]\n  output y = x\n}\n')
    with pytest.raises(NetcImportError) as info:
        netc.check_file(main)
    assert info.value.span is not None and (info.value.span.line, info.value.span.col) == (1, 1)
    assert "cannot resolve import" in info.value.message
    with pytest.raises(NetcError, match="cannot resolve file"):
        netc.check_file(tmp_path / "a.net")


@pytest.mark.parametrize("name", ["limit_huge_dense", "limit_tensor_elements", "limit_huge_range", "limit_long_list",
                                  "limit_long_string"])
def test_limit_errors_come_before_allocation(name: str) -> None:
    """A resource guard trips before the memory it guards is taken."""
    case = next(c for c in CASES if c.name == name)
    tracemalloc.start()
    try:
        with pytest.raises(NetcError):
            _compile(case)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{name}: {peak / 2**20:.0f} MiB allocated before the limit error"


def test_catalogue_is_large_and_well_formed() -> None:
    assert len(CASES) >= 60
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    for case in CASES:
        assert case.expected.message, case.name
        assert set(case.directives) <= {"settings", "limits", "network", "compile", "requires"}, case.name


# ----------------------------------------------------------------------------- weight files

NET = """network M {
  input x: f32[N, 4]
  output y = x -> dense(3, name="fc")
}
"""
GOOD = {"fc.weight": np.ones((4, 3), np.float32), "fc.bias": np.zeros(3, np.float32)}


def _npz(path: Path, arrays: dict) -> None:
    np.savez(path, **arrays)


def _safetensors(path: Path, arrays: dict) -> None:
    from safetensors.numpy import save_file

    save_file(arrays, str(path))


def _raw(data: bytes):
    def write(path: Path, _arrays: dict) -> None:
        path.write_bytes(data)
    return write


def _truncated(writer, keep: int):
    def write(path: Path, arrays: dict) -> None:
        writer(path, arrays)
        path.write_bytes(path.read_bytes()[:keep])
    return write


def _safetensors_header(header: dict, data: bytes = b""):
    blob = json.dumps(header).encode()
    return _raw(struct.pack("<Q", len(blob)) + blob + data)


def _zip_member(name: str, data: bytes):
    def write(path: Path, _arrays: dict) -> None:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(name, data)
    return write


def _npy(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.save(f, arrays["fc.weight"])


def _object_array(path: Path, arrays: dict) -> None:
    np.savez(path, **{**arrays, "fc.weight": np.array([{}, []], dtype=object)})


_F32 = {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}
# (id, file name, writer, arrays, message substring)
WEIGHT_CASES = [
    ("missing-tensor", "w.npz", _npz, {"fc.weight": GOOD["fc.weight"]}, "missing 1 tensor(s): fc.bias"),
    ("extra-tensor", "w.npz", _npz, {**GOOD, "fc.scale": np.ones(3, np.float32)},
     "1 unexpected tensor(s): fc.scale"),
    ("wrong-shape", "w.npz", _npz, {**GOOD, "fc.weight": np.ones((3, 4), np.float32)},
     "'fc.weight' has shape [3, 4], the network expects [4, 3]"),
    ("wrong-dtype", "w.npz", _npz, {**GOOD, "fc.weight": np.ones((4, 3), np.int64)},
     "'fc.weight' has dtype int64, the network expects f32"),
    ("wrong-dtype-safetensors", "w.safetensors", _safetensors, {**GOOD, "fc.bias": np.zeros(3, np.int32)},
     "'fc.bias' has dtype int32"),
    ("missing-safetensors", "w.safetensors", _safetensors, {"fc.bias": GOOD["fc.bias"]}, "missing 1 tensor(s)"),
    ("truncated-npz", "w.npz", _truncated(_npz, 100), GOOD, "cannot read weight file"),
    ("empty-npz", "w.npz", _raw(b""), GOOD, "cannot read weight file"),
    ("garbage-npz", "w.npz", _raw(bytes(range(256)) * 4), GOOD, "cannot read weight file"),
    ("pickled-object-npz", "w.npz", _object_array, GOOD, "cannot read weight file"),
    ("zip-of-text", "w.npz", _zip_member("fc.weight.txt", b"hello"), GOOD, "unexpected tensor(s): fc.weight.txt"),
    ("truncated-safetensors", "w.safetensors", _truncated(_safetensors, 60), GOOD, "cannot read weight file"),
    ("empty-safetensors", "w.safetensors", _raw(b""), GOOD, "cannot read weight file"),
    ("huge-header-safetensors", "w.safetensors", _raw(struct.pack("<Q", 2**62) + b"{}"), GOOD,
     "cannot read weight file"),
    ("bad-json-safetensors", "w.safetensors", _raw(struct.pack("<Q", 5) + b"{abc}"), GOOD,
     "cannot read weight file"),
    ("short-data-safetensors", "w.safetensors", _safetensors_header({"fc.weight": _F32}, b"\0" * 20), GOOD,
     "cannot read weight file"),
    ("wrong-suffix", "w.pt", _npz, GOOD, "weight files are .npz or .safetensors"),
    ("npy-named-npz", "w.npz", _npy, GOOD, "not an .npz archive of named tensors"),
]


def _weight_params():
    for case in WEIGHT_CASES:
        if hasattr(case, "marks"):  # a pytest.param: a case that shows a known bug
            yield pytest.param(*case.values[1:], id=case.values[0], marks=case.marks)
        else:
            yield pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize("name,writer,arrays,message", list(_weight_params()))
def test_weight_file_error(tmp_path: Path, name: str, writer, arrays: dict, message: str) -> None:
    net = tmp_path / "m.net"
    net.write_text(NET)
    weights = tmp_path / name
    writer(weights, arrays)
    if name == "w.pt" and not weights.exists():  # np.savez appends .npz
        (tmp_path / "w.pt.npz").rename(weights)
    with pytest.raises(NetcWeightsError) as info:
        netc.compile_file(net, weights=weights)
    assert message in info.value.message


def test_weight_file_not_found(tmp_path: Path) -> None:
    net = tmp_path / "m.net"
    net.write_text(NET)
    for missing in (tmp_path / "nope.npz", tmp_path):
        with pytest.raises(NetcWeightsError, match="weight file not found"):
            netc.compile_file(net, weights=missing)


def test_good_weight_files_load(tmp_path: Path) -> None:
    """The control for the table above: the same network loads well-formed files."""
    net = tmp_path / "m.net"
    net.write_text(NET)
    for name, writer in (("w.npz", _npz), ("w.safetensors", _safetensors)):
        writer(tmp_path / name, GOOD)
        compiled = netc.compile_file(net, weights=tmp_path / name)
        np.testing.assert_array_equal(compiled.params["fc.weight"], GOOD["fc.weight"])


# ----------------------------------------------------------------------------- run-time inputs

RUN_NET = """network M {
  input x: f32[N, 4]
  input t: f32[N, T]
  output y = x -> dense(3)
}
"""
X = np.zeros((2, 4), np.float32)
T = np.zeros((2, 5), np.float32)
INPUT_CASES = [
    ("unknown-name", {"x": X, "t": T, "z": X}, "network 'M' has no input named 'z'"),
    ("missing", {"x": X}, "missing input 't'"),
    ("wrong-dtype", {"x": X.astype(np.float64), "t": T}, "input 'x' has dtype float64"),
    ("int-for-float", {"x": X.astype(np.int64), "t": T}, "input 'x' has dtype int64"),
    ("wrong-rank", {"x": X[0], "t": T}, "input 'x' has shape [4]"),
    ("wrong-static-dim", {"x": np.zeros((2, 5), np.float32), "t": T}, "input 'x' has shape [2, 5]"),
    ("symbolic-dim-conflict", {"x": X, "t": np.zeros((3, 5), np.float32)}, "but N = 2 from an earlier input"),
    ("scalar", {"x": np.float32(1.0), "t": T}, "input 'x' has shape []"),
]


@pytest.fixture(scope="module")
def run_graph_ir():
    return netc.compile_source(RUN_NET, name="run_inputs.net")


@pytest.mark.parametrize("inputs,message", [c[1:] for c in INPUT_CASES], ids=[c[0] for c in INPUT_CASES])
def test_reference_input_error(run_graph_ir, inputs: dict, message: str) -> None:
    with pytest.raises(NetcInputError) as info:
        bind_inputs(run_graph_ir.graph, {k: np.asarray(v) for k, v in inputs.items()})
    assert message in info.value.message


@pytest.mark.parametrize("inputs", [c[1] for c in INPUT_CASES], ids=[c[0] for c in INPUT_CASES])
def test_onnxruntime_input_error(run_graph_ir, inputs: dict) -> None:
    """The onnxruntime path checks inputs just as strictly, before running anything."""
    with pytest.raises(NetcInputError):
        netc.run(run_graph_ir.model, {k: np.asarray(v) for k, v in inputs.items()})


# ----------------------------------------------------------------------------- command line

try:
    from netc import cli
except ImportError:  # the command line is optional for this table
    cli = None
needs_cli = pytest.mark.skipif(cli is None, reason="netc.cli is not available")

SYNTAX_ERROR = "network M {\n  input x: f32[N, 4]\n  output y = x -> dense(3 act=relu)\n}\n"


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    assert cli is not None
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_user_error(code: int, err: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "error:" in err, err


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "good.net").write_text(NET)
    (tmp_path / "bad.net").write_text(SYNTAX_ERROR)
    np.savez(tmp_path / "good.npz", **GOOD)
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "x64.npy", X.astype(np.float64))
    return tmp_path


PRECIOUS = b"an existing file that a failed command must leave alone"


@needs_cli
@pytest.mark.parametrize("args,message", [
    (["compile", "bad.net"], "unexpected name 'act'"),
    (["compile", "good.net", "--weights", "corrupt.npz"], "cannot read weight file"),
    (["compile", "good.net", "--weights", "missing.npz"], "weight file not found"),
    (["compile", "good.net", "--set", "classes=3"], "no parameter or dim named 'classes'"),
    (["compile", "good.net", "--network", "Nope"], "no network named 'Nope'"),
    (["compile", "missing.net"], "not found"),
    (["check", "bad.net"], "unexpected name 'act'"),
], ids=["syntax", "corrupt-weights", "missing-weights", "unknown-setting", "unknown-network", "missing-file",
        "check-syntax"])
def test_cli_error_keeps_existing_output(capsys, project: Path, monkeypatch, args: list[str],
                                         message: str) -> None:
    monkeypatch.chdir(project)
    out = project / "out.onnx"
    out.write_bytes(PRECIOUS)
    code, _, err = _main(capsys, *args, *(["-o", out] if args[0] == "compile" else []))
    _assert_user_error(code, err)
    assert message in err
    assert out.read_bytes() == PRECIOUS
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".")) == []  # no temporary left


@needs_cli
def test_cli_error_creates_no_output(capsys, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    code, _, err = _main(capsys, "compile", "bad.net", "-o", "new.onnx")
    _assert_user_error(code, err)
    assert not (project / "new.onnx").exists()
    assert not (project / "bad.onnx").exists()


@needs_cli
@pytest.mark.parametrize("target", ["good.net", "good.npz"])
def test_cli_refuses_to_overwrite_an_input(capsys, project: Path, monkeypatch, target: str) -> None:
    monkeypatch.chdir(project)
    before = (project / target).read_bytes()
    code, _, err = _main(capsys, "compile", "good.net", "--weights", "good.npz", "-o", target)
    _assert_user_error(code, err)
    assert "refusing to overwrite the input file" in err
    assert (project / target).read_bytes() == before


@needs_cli
@pytest.mark.parametrize("args,message", [
    (["--input", "z=x.npy"], "no input named 'z'"),
    (["--input", "x=x64.npy"], "float64"),
    (["--input", "x=missing.npy"], "not found"),
    (["--input", "x=good.net"], "cannot read"),
    ([], "x"),
], ids=["unknown-name", "wrong-dtype", "missing-file", "not-numpy", "missing-input"])
def test_cli_run_input_errors(capsys, project: Path, monkeypatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(project)
    out = project / "outputs.npz"
    out.write_bytes(PRECIOUS)
    code, _, err = _main(capsys, "run", "good.net", *args, "-o", out)
    _assert_user_error(code, err)
    assert message in err
    assert out.read_bytes() == PRECIOUS


@needs_cli
def test_cli_run_refuses_to_overwrite_its_input(capsys, project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    before = (project / "x.npy").read_bytes()
    code, _, err = _main(capsys, "run", "good.net", "--input", "x=x.npy", "-o", "x.npy")
    _assert_user_error(code, err)
    assert (project / "x.npy").read_bytes() == before


@needs_cli
def test_cli_subprocess_error_has_no_traceback(project: Path) -> None:
    """The installed entry point, end to end: a located message on stderr, exit code 1."""
    out = project / "out.onnx"
    out.write_bytes(PRECIOUS)
    proc = subprocess.run([sys.executable, "-m", "netc", "compile", "bad.net", "-o", "out.onnx"],
                          cwd=project, capture_output=True, text=True, timeout=120)
    _assert_user_error(proc.returncode, proc.stderr)
    assert "bad.net:3:27: error: unexpected name 'act'" in proc.stderr
    assert "^" in proc.stderr and "hint: separate arguments with ','" in proc.stderr
    assert out.read_bytes() == PRECIOUS
