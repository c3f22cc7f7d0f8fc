"""`netc batch` with the local engine: every dataset format, outputs equal to `netc run`
row by row and in input order, resuming after an interrupted run, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="netc batch needs the 'batch' extra (pyarrow)")
import pyarrow.parquet as pq  # noqa: E402

import netc  # noqa: E402
from netc import cli  # noqa: E402
from netc.runtime.batch import MANIFEST, read_results  # noqa: E402
from tests.conftest import EXAMPLES  # noqa: E402

MLP = EXAMPLES / "mnist_mlp.net"
TAGGER = """network Tagger {
  input words: i64[T, N]
  input lengths: i32[N]
  h = words -> embed(50, 8) -> gru(6, bidirectional=true, lengths=lengths)
  output tags = h -> dense(5) -> softmax
}
"""


def mlp_shards(folder, sizes=(300, 7, 211), seed=0):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((n, 784)).astype(np.float32) for n in sizes]
    for k, a in enumerate(arrays):
        np.save(folder / f"shard-{k:03d}.npy", a)
    return np.concatenate(arrays)


def tagger_shards(folder, seed=0):
    """Time-major shards padded to their own T, each with its rows' lengths."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    shards = []
    for k, (t, n) in enumerate([(9, 13), (4, 5), (12, 20)]):
        lengths = rng.integers(1, t + 1, n).astype(np.int32)
        words = rng.integers(0, 50, (t, n)).astype(np.int64)
        words[np.arange(t)[:, None] >= lengths[None, :]] = 0  # padding
        np.savez(folder / f"part-{k}.npz", words=words, lengths=lengths)
        shards.append({"words": words, "lengths": lengths})
    return shards


def batch(*argv):
    return cli.main(["batch", *map(str, argv), "-q"])


def test_mlp_rows_match_run_in_input_order(tmp_path):
    rows = mlp_shards(tmp_path / "data")
    assert batch(MLP, tmp_path / "data", "-o", tmp_path / "out", "--workers", "2", "--batch-size", "64",
                 "--shard-rows", "100") == 0
    got = read_results(tmp_path / "out")
    want = netc.run(MLP, {"image": rows})["probs"]
    np.testing.assert_array_equal(got["row_id"], np.arange(len(rows)))
    np.testing.assert_allclose(got["probs"], want, rtol=1e-5, atol=1e-6)
    parts = sorted(p.name for p in (tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 3 + 1 + 3  # 300 -> 3 units, 7 -> 1, 211 -> 3


def check_tagger_parts(out, shards, compiled):
    """Each part holds one shard's rows (its own T): equal to running the shard whole."""
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == len(shards)
    first = 0
    for part, shard in zip(parts, shards):
        table = pq.read_table(part)
        tags = table.column("tags").combine_chunks().to_numpy_ndarray()  # [rows, T, labels]
        want = netc.run(compiled, shard)["tags"]  # [T, N, labels]
        np.testing.assert_allclose(tags, np.moveaxis(want, 1, 0), rtol=1e-5, atol=1e-6)
        ids = table.column("row_id").to_numpy()
        np.testing.assert_array_equal(ids, np.arange(first, first + len(ids)))
        first += len(ids)


def test_time_major_sequences_with_padding(tmp_path):
    model = tmp_path / "tagger.net"
    model.write_text(TAGGER)
    shards = tagger_shards(tmp_path / "data")
    assert batch(model, tmp_path / "data", "-o", tmp_path / "out", "--batch-size", "4") == 0
    check_tagger_parts(tmp_path / "out", shards, netc.compile_file(model))


def test_parquet_lists_tensors_and_cast(tmp_path):
    (tmp_path / "data").mkdir()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 784))  # float64, as pandas writes it
    lists = pa.table({"image": pa.array(list(x[:25]), type=pa.list_(pa.float64()))})
    pq.write_table(lists, tmp_path / "data" / "a.parquet", row_group_size=7)
    tensors = pa.table({"image": pa.FixedShapeTensorArray.from_numpy_ndarray(x[25:])})
    pq.write_table(tensors, tmp_path / "data" / "b.parquet")
    out = tmp_path / "out"
    assert batch(MLP, tmp_path / "data", "-o", out, "--shard-rows", "10") == 1  # f64 refused
    assert not list(out.glob("part-*"))
    assert batch(MLP, tmp_path / "data", "-o", out, "--shard-rows", "10", "--cast-inputs") == 0
    got = read_results(out)
    want = netc.run(MLP, {"image": x.astype(np.float32)})["probs"]
    np.testing.assert_allclose(got["probs"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["row_id"], np.arange(40))


def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path, capsys):
    data = tmp_path / "data"
    rows = mlp_shards(data, sizes=(50, 50, 50))
    np.save(data / "shard-001.npy", rows[50:100].astype(np.float64))  # fails the run at unit 1...
    out = tmp_path / "out"
    assert batch(MLP, data, "-o", out, "--shard-rows", "25") == 1
    done = sorted(p.name for p in out.glob("part-*.parquet"))
    assert done == ["part-000000.parquet", "part-000001.parquet"]  # ...after units 0 and 1
    # The same model and data with --cast-inputs: only the rest is run.
    assert cli.main(["batch", str(MLP), str(data), "-o", str(out), "--shard-rows", "25", "--cast-inputs"]) == 0
    assert "resuming" in (err := capsys.readouterr().err) and "2 of 6 units already done" in err
    got = read_results(out)
    np.testing.assert_array_equal(got["row_id"], np.arange(150))
    want = netc.run(MLP, {"image": rows})["probs"]
    np.testing.assert_allclose(got["probs"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case, message", [
    ("extra_key", "has arrays the model does not take: other"),
    ("missing_key", "has no array for input image"),
    ("rows_disagree", "the inputs disagree on the number of rows"),
    ("mixed", "mixes formats"),
    ("empty", "holds no .npy, .npz, .parquet files"),
    ("not_ours", "a folder that netc batch did not make"),
    ("other_run", "holds the results of another run"),
    ("batch_dim", "has no axis named B"),
])
def test_errors(tmp_path, capsys, case, message):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    model = MLP
    x = np.zeros((4, 784), np.float32)
    extra: list[str] = []
    if case == "extra_key":
        np.savez(data / "a.npz", image=x, other=x)
    elif case == "missing_key":
        np.savez(data / "a.npz", picture=x)
    elif case == "rows_disagree":
        model = tmp_path / "two.net"
        model.write_text("network Two {\n  input a: f32[N, 2]\n  input b: f32[N, 2]\n  output y = a + b\n}\n")
        np.savez(data / "a.npz", a=np.zeros((3, 2), np.float32), b=np.zeros((4, 2), np.float32))
    elif case == "mixed":
        np.save(data / "a.npy", x)
        np.savez(data / "b.npz", image=x)
    elif case == "not_ours":
        np.save(data / "a.npy", x)
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "other_run":
        np.save(data / "a.npy", x)
        assert batch(MLP, data, "-o", out) == 0
        np.save(data / "a.npy", np.ones((5, 784), np.float32))
    elif case == "batch_dim":
        np.save(data / "a.npy", x)
        extra = ["--batch-dim", "B"]
    assert batch(model, data, "-o", out, *extra) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if case == "not_ours":
        assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_manifest_names_the_model_and_files(tmp_path):
    mlp_shards(tmp_path / "data", sizes=(3,))
    assert batch(MLP, tmp_path / "data", "-o", tmp_path / "out") == 0
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert len(manifest["model_sha256"]) == 64
    assert [f["rows"] for f in manifest["files"]] == [3]
