"""`netc batch --engine ray` on a real local Ray instance: outputs equal `netc run` row by
row, an actor killed mid-run is retried with nothing lost or duplicated, and a run whose
driver is killed resumes. Every wait is bounded; Ray is shut down and no process of its
session is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray tests need the 'ray' extra")
pytest.importorskip("pyarrow", reason="netc batch needs the 'batch' extra (pyarrow)")

import netc  # noqa: E402
from netc.runtime import batch  # noqa: E402
from tests.conftest import EXAMPLES, ROOT  # noqa: E402
from tests.test_batch import MLP, TAGGER, check_tagger_parts, mlp_shards, tagger_shards  # noqa: E402

# Heavy enough per row that a run of many small units lasts a few seconds.
WIDE = """network Wide {
  input x: f32[N, 256]
  output y = x -> dense(1024, act=relu) -> dense(1024, act=relu) -> dense(1024, act=relu) -> dense(8)
}
"""
DEADLINE = 240  # seconds: the longest any test here waits for anything


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module; its address lets CLI subprocesses join it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    session_dir = ray._private.worker._global_node.get_session_dir_path()
    address = ray.get_runtime_context().gcs_address
    try:
        yield address
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 30
        while _processes_of(session_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _processes_of(session_dir), "Ray processes left behind"


def _pids(matches) -> list[int]:
    """Pids of the processes whose command line `matches` (a predicate on its bytes)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if matches(cmdline):
                pids.append(int(entry.name))
    return pids


def _processes_of(session_dir: str) -> list[int]:
    """Processes of a Ray session (raylet, GCS, workers): their command lines name its folder."""
    name = os.path.basename(session_dir).encode()
    return _pids(lambda cmdline: name in cmdline)


def _actor_pids() -> list[int]:
    """Processes of the actor pool (Ray titles them after the callable class)."""
    return _pids(lambda cmdline: cmdline.startswith(b"ray::MapWorker") and b"UnitRunner" in cmdline)


def _netc_batch(*argv) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "netc", "batch", *map(str, argv)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_parts(out: Path, count: int, proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        parts = len(list(out.glob("part-*.parquet")))
        if parts >= count or proc.poll() is not None:
            return parts
        time.sleep(0.01)
    raise AssertionError(f"no {count} part files within {DEADLINE} s")


def _plan(model_path, data, out, **kw):
    compiled = netc.compile_file(model_path)
    data_bytes = compiled.model.SerializeToString()
    specs, shapes = batch.model_io(compiled.model)
    return data_bytes, batch.make_plan(data_bytes, specs, shapes, data, out, **kw)


def test_ray_rows_match_run(cluster, tmp_path):
    rows = mlp_shards(tmp_path / "data")
    model, plan = _plan(MLP, tmp_path / "data", tmp_path / "out", batch_size=64, shard_rows=100)
    result = batch.run_batch(model, plan, engine="ray", workers=2, quiet=True)
    assert (result.units, result.skipped, result.rows) == (7, 0, len(rows))
    got = batch.read_results(tmp_path / "out")
    np.testing.assert_array_equal(got["row_id"], np.arange(len(rows)))
    np.testing.assert_allclose(got["probs"], netc.run(MLP, {"image": rows})["probs"], rtol=1e-5, atol=1e-6)


def test_ray_time_major_sequences_with_padding(cluster, tmp_path):
    path = tmp_path / "tagger.net"
    path.write_text(TAGGER)
    shards = tagger_shards(tmp_path / "data")
    model, plan = _plan(path, tmp_path / "data", tmp_path / "out", batch_size=4)
    batch.run_batch(model, plan, engine="ray", workers=1, quiet=True)
    check_tagger_parts(tmp_path / "out", shards, netc.compile_file(path))


EMBED = "network E {\n  input ids: i64[N, 5]\n  output y = ids -> embed(50, 4) -> flatten -> dense(2)\n}\n"


def test_a_mistake_in_the_data_is_a_located_error_from_an_actor(cluster, tmp_path, capsys):
    """An actor's NetcError reaches the driver as the same error (exit 1), not as Ray's
    wrapper; the value checks of a model compiled from .net apply to the data's rows."""
    from netc import cli

    path = tmp_path / "e.net"
    path.write_text(EMBED)
    (tmp_path / "data").mkdir()
    ids = np.ones((6, 5), np.int64)
    ids[4, 2] = -3  # would count from the end of the table if not refused
    np.save(tmp_path / "data" / "ids.npy", ids)
    for engine in ("local", "ray"):
        code = cli.main(["batch", str(path), str(tmp_path / "data"), "-o", str(tmp_path / engine),
                         "--engine", engine, "-q"])
        err = capsys.readouterr().err
        assert code == 1 and "input 'ids' has id -3 at index [4, 2], the vocabulary is 50" in err, (engine, err)


def _wide_data(tmp_path, rows=1600):
    model = tmp_path / "wide.net"
    model.write_text(WIDE)
    (tmp_path / "data").mkdir()
    x = np.random.default_rng(1).standard_normal((rows, 256)).astype(np.float32)
    np.save(tmp_path / "data" / "x.npy", x)
    return model, x


def test_killed_actor_is_retried_nothing_lost_or_duplicated(cluster, tmp_path):
    model, x = _wide_data(tmp_path)
    out = tmp_path / "out"
    proc = _netc_batch(model, tmp_path / "data", "-o", out, "--engine", "ray", "--address", cluster,
                       "--workers", "2", "--shard-rows", "10", "--batch-size", "10", "-q")
    try:
        before = _wait_for_parts(out, 3, proc)
        victims = _actor_pids()
        assert proc.poll() is None and victims, "the run ended before an actor could be killed"
        os.kill(victims[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert before < 160
    got = batch.read_results(out)
    np.testing.assert_array_equal(got["row_id"], np.arange(len(x)))  # each row once, in order
    np.testing.assert_allclose(got["y"], netc.run(model, {"x": x})["y"], rtol=1e-4, atol=1e-5)


def test_killed_driver_run_resumes(cluster, tmp_path):
    model, x = _wide_data(tmp_path)
    out = tmp_path / "out"
    argv = (model, tmp_path / "data", "-o", out, "--engine", "ray", "--address", cluster, "--workers", "2",
            "--shard-rows", "10", "--batch-size", "10")
    proc = _netc_batch(*argv)
    try:
        _wait_for_parts(out, 3, proc)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE)
    finally:
        proc.kill()
    done_before = len(list(out.glob("part-*.parquet")))
    assert 3 <= done_before < 160
    second = _netc_batch(*argv)
    try:
        _, err = second.communicate(timeout=DEADLINE)
    finally:
        second.kill()
    assert second.returncode == 0, err
    skipped = int(err.split("resuming")[1].split(": ")[1].split(" of ")[0])
    assert skipped >= done_before - 2  # units being written at the kill may be redone
    got = batch.read_results(out)
    np.testing.assert_array_equal(got["row_id"], np.arange(len(x)))
    np.testing.assert_allclose(got["y"], netc.run(model, {"x": x})["y"], rtol=1e-4, atol=1e-5)


def test_unreachable_cluster_is_a_clean_error(tmp_path):
    mlp_shards(tmp_path / "data", sizes=(3,))
    proc = _netc_batch(EXAMPLES / "mnist_mlp.net", tmp_path / "data", "-o", tmp_path / "out", "--engine", "ray",
                       "--address", "127.0.0.1:1")
    try:
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "Traceback" not in err and "Ray cluster at 127.0.0.1:1" in err
