"""Atomic writes: `netc.save_model` and `netc.files.atomic_path` never leave a partial file
at the target — not when the write raises, not when it is interrupted (KeyboardInterrupt),
not when the process is killed — never overwrite an input with `-o`, and keep a
pre-existing output untouched when anything fails."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import netc
from netc import api
from netc.dsl.errors import NetcError, NetcInputError
from netc.files import atomic_path, atomic_write, check_output_path

NET = "network M {\n  input x: f32[N, 4]\n  output y = x -> dense(64, name=\"fc\") -> relu\n}\n"
OLD = b"the previous model, which a failed write must leave alone"


@pytest.fixture(scope="module")
def compiled() -> netc.Compiled:
    return netc.compile_source(NET, name="atomic.net")


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def _interrupting_write_bytes(monkeypatch, exc: BaseException) -> None:
    """Path.write_bytes writes half of its data, then raises `exc`."""
    real = Path.write_bytes

    def half(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])
        raise exc

    monkeypatch.setattr(Path, "write_bytes", half)


def _interrupting_stream(monkeypatch, exc: BaseException) -> None:
    """`netc compile`'s streaming writer writes the model's first bytes, then raises `exc`."""
    import netc.api

    def half(model, params, value_of, f) -> int:
        f.write(model.SerializeToString()[:10])
        raise exc

    monkeypatch.setattr(netc.api, "write_model", half)


# ----------------------------------------------------------------------------- success


def test_save_writes_the_model_and_nothing_else(tmp_path: Path, compiled: netc.Compiled) -> None:
    out = compiled.save(tmp_path / "m.onnx")
    assert out.read_bytes() == compiled.model.SerializeToString()
    assert _leftovers(tmp_path, {"m.onnx"}) == []
    onnx.checker.check_model(onnx.load(out))


# ----------------------------------------------------------------------------- interruption


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError(28, "No space left on device"), MemoryError()],
                         ids=["interrupt", "disk-full", "memory"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_failed_save_leaves_no_partial_file(tmp_path: Path, compiled: netc.Compiled, monkeypatch,
                                            exc: BaseException, existing: bool) -> None:
    out = tmp_path / "m.onnx"
    if existing:
        out.write_bytes(OLD)
    _interrupting_write_bytes(monkeypatch, exc)
    # the OS refusing (a full disk, no memory) is a NetcError naming the file; ^C stays itself
    with pytest.raises(NetcError if isinstance(exc, OSError | MemoryError) else type(exc)):
        netc.save_model(compiled.model, out)
    monkeypatch.undo()
    if existing:
        assert out.read_bytes() == OLD
    else:
        assert not out.exists()
    assert _leftovers(tmp_path, {"m.onnx"}) == [], "a temporary file was left behind"


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_failure_while_committing_keeps_the_old_file(tmp_path: Path, compiled: netc.Compiled, monkeypatch,
                                                      where: str) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(OLD)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, where, boom)
    with pytest.raises(KeyboardInterrupt):
        netc.save_model(compiled.model, out)
    monkeypatch.undo()
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path, {"m.onnx"}) == []


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_atomic_path_interrupted_mid_write(tmp_path: Path, existing: bool) -> None:
    out = tmp_path / "outputs.npz"
    if existing:
        out.write_bytes(OLD)
    with pytest.raises(KeyboardInterrupt), atomic_path(out, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half of the")
        raise KeyboardInterrupt
    assert out.read_bytes() == OLD if existing else not out.exists()
    assert _leftovers(tmp_path, {"outputs.npz"}) == []


def test_atomic_write_interrupted_by_the_writer(tmp_path: Path) -> None:
    out = tmp_path / "outputs.npz"
    out.write_bytes(OLD)

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half of the")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(out, write, suffix=".npz")
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path, {"outputs.npz"}) == []


_KILLED_WRITER = r"""
import sys, time
from netc.files import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as f:
        f.write(b"partial " * 1000)
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
"""


def test_killed_process_leaves_the_target_untouched(tmp_path: Path) -> None:
    """SIGKILL gives no chance to clean up: the temporary file may stay, hidden and named as
    such, but the target keeps its old bytes."""
    out = tmp_path / "m.onnx"
    out.write_bytes(OLD)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.read_bytes() == OLD
    for name in _leftovers(tmp_path, {"m.onnx"}):
        assert name.startswith(".m.onnx.") and name.endswith(".tmp"), name


def test_interrupted_cli_compile_keeps_the_old_output(tmp_path: Path, monkeypatch, capsys) -> None:
    cli = pytest.importorskip("netc.cli")
    source = tmp_path / "m.net"
    source.write_text(NET)
    out = tmp_path / "m.onnx"
    out.write_bytes(OLD)
    _interrupting_stream(monkeypatch, KeyboardInterrupt())
    code = cli.main(["compile", str(source), "-o", str(out)])
    monkeypatch.undo()
    assert code == 130, capsys.readouterr().err
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path, {"m.net", "m.onnx"}) == []


# ----------------------------------------------------------------------------- inputs are never outputs


def test_output_equal_to_the_input_is_refused(tmp_path: Path, compiled: netc.Compiled) -> None:
    source = tmp_path / "m.net"
    source.write_text(NET)
    for spelling in (source, tmp_path / "." / "m.net", tmp_path / "sub" / ".." / "m.net"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(NetcInputError, match="refusing to overwrite the input file"):
            compiled.save(spelling, source)
    assert source.read_text() == NET


def test_output_through_a_symlink_to_the_input_is_refused(tmp_path: Path, compiled: netc.Compiled) -> None:
    source = tmp_path / "m.net"
    source.write_text(NET)
    link = tmp_path / "link.onnx"
    link.symlink_to(source)
    with pytest.raises(NetcInputError, match="refusing to overwrite the input file"):
        compiled.save(link, source)
    assert source.read_text() == NET


def test_output_hard_linked_to_the_input_leaves_the_input_intact(tmp_path: Path, compiled: netc.Compiled) -> None:
    """The rename replaces the link, not the file it shares with the input."""
    source = tmp_path / "m.net"
    source.write_text(NET)
    link = tmp_path / "link.onnx"
    os.link(source, link)
    with contextlib.suppress(NetcInputError):
        compiled.save(link, source)
    assert source.read_text() == NET


def test_output_paths_that_cannot_be_written_are_refused_first(tmp_path: Path) -> None:
    with pytest.raises(NetcInputError, match="is a directory"):
        check_output_path(tmp_path)
    with pytest.raises(NetcInputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "m.onnx")


# ----------------------------------------------------------------------------- models over 2 GB


@pytest.fixture
def external(monkeypatch):
    """Take the external-data path (models over 2 GB) for a small model."""
    monkeypatch.setattr(api, "EXTERNAL_DATA_THRESHOLD", 0)


DATA_NAME = re.compile(r"m\.onnx\.[0-9a-f]{16}\.data")


def _data_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".data"))


def _assert_loads(path: Path, params: dict[str, np.ndarray]) -> None:
    loaded = onnx.load(path)
    for tensor in loaded.graph.initializer:
        np.testing.assert_array_equal(numpy_helper.to_array(tensor), params[tensor.name])


def _other_model(compiled: netc.Compiled) -> onnx.ModelProto:
    """The same network with other weights: another data file."""
    model = onnx.ModelProto()
    model.CopyFrom(compiled.model)
    for tensor in model.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) + 1, tensor.name))
    return model


def test_external_data_save_writes_both_files(tmp_path: Path, compiled: netc.Compiled, external) -> None:
    model = onnx.ModelProto()
    model.CopyFrom(compiled.model)
    netc.save_model(model, tmp_path / "m.onnx")
    (data,) = _data_files(tmp_path)
    assert DATA_NAME.fullmatch(data), data
    assert _leftovers(tmp_path, {"m.onnx", data}) == []
    assert api.model_files(tmp_path / "m.onnx") == [tmp_path / "m.onnx", tmp_path / data]
    _assert_loads(tmp_path / "m.onnx", compiled.params)


def test_external_data_file_is_named_after_its_content(tmp_path: Path, compiled: netc.Compiled,
                                                       external) -> None:
    netc.save_model(compiled.model, tmp_path / "m.onnx")
    first = _data_files(tmp_path)
    model_bytes = (tmp_path / "m.onnx").read_bytes()
    netc.save_model(compiled.model, tmp_path / "m.onnx")  # the same model again: the same files
    assert _data_files(tmp_path) == first
    assert (tmp_path / "m.onnx").read_bytes() == model_bytes
    _assert_loads(tmp_path / "m.onnx", compiled.params)


def test_external_data_save_over_a_pair_removes_the_old_data(tmp_path: Path, compiled: netc.Compiled,
                                                             external) -> None:
    netc.save_model(compiled.model, tmp_path / "m.onnx")
    (old,) = _data_files(tmp_path)
    other = _other_model(compiled)
    netc.save_model(other, tmp_path / "m.onnx")
    (new,) = _data_files(tmp_path)
    assert new != old
    assert _leftovers(tmp_path, {"m.onnx", new}) == []
    _assert_loads(tmp_path / "m.onnx", {t.name: numpy_helper.to_array(t) for t in other.graph.initializer})


def test_external_data_save_replaces_an_old_style_pair(tmp_path: Path, compiled: netc.Compiled, external) -> None:
    """A model saved as `m.onnx` + `m.onnx.data` (the earlier layout) loses its data file once replaced."""
    onnx.save_model(_other_model(compiled), tmp_path / "m.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.onnx.data", size_threshold=0)
    netc.save_model(compiled.model, tmp_path / "m.onnx")
    (data,) = _data_files(tmp_path)
    assert DATA_NAME.fullmatch(data)
    _assert_loads(tmp_path / "m.onnx", compiled.params)


def test_external_data_save_keeps_data_it_did_not_write(tmp_path: Path, compiled: netc.Compiled,
                                                        external) -> None:
    """Only data files named as netc names them are removed with the model they belonged to."""
    onnx.save_model(_other_model(compiled), tmp_path / "m.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="shared_weights.bin", size_threshold=0)
    netc.save_model(compiled.model, tmp_path / "m.onnx")
    assert (tmp_path / "shared_weights.bin").exists()


def test_failed_external_data_save_keeps_a_loadable_old_pair(tmp_path: Path, compiled: netc.Compiled,
                                                             external, monkeypatch) -> None:
    netc.save_model(compiled.model, tmp_path / "m.onnx")
    before = _data_files(tmp_path)
    real = os.replace
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the data file is in place; the model is not
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(KeyboardInterrupt):
        netc.save_model(_other_model(compiled), tmp_path / "m.onnx")
    monkeypatch.undo()
    assert _data_files(tmp_path) == before
    assert _leftovers(tmp_path, {"m.onnx", *before}) == []
    _assert_loads(tmp_path / "m.onnx", compiled.params)


def test_interrupted_external_data_save_leaves_nothing(tmp_path: Path, compiled: netc.Compiled, external,
                                                       monkeypatch) -> None:
    model = onnx.ModelProto()
    model.CopyFrom(compiled.model)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx, "save_model", boom)
    with pytest.raises(KeyboardInterrupt):
        netc.save_model(model, tmp_path / "m.onnx")
    assert _leftovers(tmp_path, set()) == []


def test_failed_external_data_save_keeps_the_old_pair(tmp_path: Path, compiled: netc.Compiled, external,
                                                      monkeypatch) -> None:
    (tmp_path / "m.onnx").write_bytes(OLD)
    (tmp_path / "m.onnx.data").write_bytes(OLD + b" (data)")
    real = os.replace
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(src, dst)

    model = onnx.ModelProto()
    model.CopyFrom(compiled.model)
    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(KeyboardInterrupt):
        netc.save_model(model, tmp_path / "m.onnx")
    monkeypatch.undo()
    assert (tmp_path / "m.onnx").read_bytes() == OLD
    assert (tmp_path / "m.onnx.data").read_bytes() == OLD + b" (data)"
    assert _leftovers(tmp_path, {"m.onnx", "m.onnx.data"}) == []  # nor the new data file


def test_external_data_save_leaves_the_model_in_memory_intact(tmp_path: Path, compiled: netc.Compiled,
                                                              external) -> None:
    model = onnx.ModelProto()
    model.CopyFrom(compiled.model)
    before = model.SerializeToString()
    netc.save_model(model, tmp_path / "a.onnx")
    assert model.SerializeToString() == before
    netc.save_model(model, tmp_path / "b.onnx")
    _assert_loads(tmp_path / "b.onnx", compiled.params)
