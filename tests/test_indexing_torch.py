"""Indexing and selection against PyTorch as an independent oracle: torch.gather
(`take_along`), torch.index_select (`gather`, `x[:, idx]`), torch.topk, torch.where,
torch.remainder / floor_divide (`%`, `//`), torch.scatter and torch.scatter_add."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netc  # noqa: E402
from netc.runtime.reference import run_graph  # noqa: E402
from netc.runtime.session import make_session  # noqa: E402
from tests.conftest import check_onnx, network_source  # noqa: E402

SEEDS = (0, 1, 2)


def run_case(expr: str, inputs: dict[str, str], arrays: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(onnxruntime, reference) for every output of a one-network file, in declaration order."""
    compiled = netc.compile_source(network_source(expr, inputs, "f32"), seed=0)
    check_onnx(compiled.model)
    session = make_session(compiled.model).session
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, arrays)))
    want = run_graph(compiled.graph, compiled.params, arrays)
    return [(got[n], want[n]) for n in compiled.graph.outputs]


def agree(pairs, *expected) -> None:
    for (got, want), exp in zip(pairs, expected, strict=True):
        exp = exp.numpy() if isinstance(exp, torch.Tensor) else exp
        assert got.shape == exp.shape and want.shape == exp.shape
        if np.issubdtype(exp.dtype, np.floating):
            np.testing.assert_allclose(want, exp, rtol=1e-6, atol=1e-6, err_msg="reference vs torch")
            np.testing.assert_allclose(got, exp, rtol=1e-6, atol=1e-6, err_msg="onnxruntime vs torch")
        else:
            np.testing.assert_array_equal(want, exp, err_msg="reference vs torch")
            np.testing.assert_array_equal(got, exp, err_msg="onnxruntime vs torch")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_take_along_is_torch_gather(seed, dim):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    shape = [3, 4, 5]
    shape[dim] = 6
    idx = rng.integers(0, x.shape[dim], shape).astype(np.int64)
    pairs = run_case(f"take_along(x, i, axis={dim})", {"x": "f32[3, 4, 5]", "i": f"i64[{', '.join(map(str, shape))}]"},
                     {"x": x, "i": idx})
    agree(pairs, torch.gather(torch.from_numpy(x), dim, torch.from_numpy(idx)))


@pytest.mark.parametrize("seed", SEEDS)
def test_take_along_with_smaller_index_is_torch_gather(seed):
    # torch.gather allows an index smaller than the input off the gathered axis; so does netc.
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    idx = rng.integers(0, 6, (2, 3)).astype(np.int64)
    pairs = run_case("take_along(x, i, axis=1)", {"x": "f32[4, 6]", "i": "i64[2, 3]"}, {"x": x, "i": idx})
    agree(pairs, torch.gather(torch.from_numpy(x), 1, torch.from_numpy(idx)))


@pytest.mark.parametrize("seed", SEEDS)
def test_subscript_and_gather_are_index_select(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 7, 3)).astype(np.float32)
    idx = rng.integers(0, 7, (4,)).astype(np.int64)
    pairs = run_case("output a = x[:, i]\n  output b = gather(x, i, axis=1)\n  output c = x[i % 5]",
                     {"x": "f32[N, 7, 3]", "i": "i64[K]"}, {"x": x, "i": idx})
    tx, ti = torch.from_numpy(x), torch.from_numpy(idx)
    agree(pairs, torch.index_select(tx, 1, ti), torch.index_select(tx, 1, ti), torch.index_select(tx, 0, ti % 5))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("k", "dim", "largest"), [(3, -1, True), (2, 0, False), (7, 1, True)])
def test_topk_is_torch_topk(seed, k, dim, largest):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 7)).astype(np.float32)
    pairs = run_case(f"v, i = topk(x, {k}, axis={dim}, largest={str(largest).lower()})\n"
                     "  output a = v\n  output b = i", {"x": "f32[N, 7]"}, {"x": x})
    values, indices = torch.topk(torch.from_numpy(x), k, dim=dim, largest=largest, sorted=True)
    agree(pairs, values, indices)


def test_topk_ties_keep_the_lower_index_first():
    # torch leaves the order of ties unspecified; netc (and ONNX TopK) put the lower index
    # first. The values agree with torch; the indices with a stable sort.
    x = np.array([[1, 3, 3, 0, 3, 1]], dtype=np.int64)
    pairs = run_case("v, i = topk(x, 4)\n  output a = v\n  output b = i", {"x": "i64[1, 6]"}, {"x": x})
    values, _ = torch.topk(torch.from_numpy(x), 4)
    agree(pairs, values, np.array([[1, 2, 4, 0]], dtype=np.int64))


@pytest.mark.parametrize("seed", SEEDS)
def test_where_is_torch_where(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 1, 5)).astype(np.float32)
    y = rng.standard_normal((4, 1)).astype(np.float32)
    m = rng.integers(0, 2, (4, 5)).astype(bool)
    pairs = run_case("output a = where(m, x, y)\n  output b = where(x > y, x, 0.5)",
                     {"x": "f32[3, 1, 5]", "y": "f32[4, 1]", "m": "bool[4, 5]"}, {"x": x, "y": y, "m": m})
    tx, ty, tm = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m)
    agree(pairs, torch.where(tm, tx, ty), torch.where(tx > ty, tx, torch.tensor(0.5)))


@pytest.mark.parametrize("seed", SEEDS)
def test_floor_mod_and_div_are_torch_remainder_and_floor_divide(seed):
    rng = np.random.default_rng(seed)
    i = rng.integers(-20, 20, (6, 5)).astype(np.int64)
    j = rng.choice([-7, -3, -1, 1, 2, 5], (5,)).astype(np.int64)
    x = (rng.standard_normal((6, 5)) * 4).astype(np.float32)
    pairs = run_case("output a = i % j\n  output b = i // j\n  output c = x % 1.5\n  output d = x // -0.75",
                     {"i": "i64[N, 5]", "j": "i64[5]", "x": "f32[N, 5]"}, {"i": i, "j": j, "x": x})
    ti, tj, tx = torch.from_numpy(i), torch.from_numpy(j), torch.from_numpy(x)
    agree(pairs, torch.remainder(ti, tj), torch.div(ti, tj, rounding_mode="floor"),
          torch.remainder(tx, 1.5), torch.div(tx, -0.75, rounding_mode="floor"))


@pytest.mark.parametrize("seed", SEEDS)
def test_scatter_is_torch_scatter(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    u = rng.standard_normal((3, 5)).astype(np.float32)
    perm = np.stack([rng.permutation(5) for _ in range(3)]).astype(np.int64)
    idx = rng.integers(0, 3, (4, 5)).astype(np.int64)
    u2 = rng.standard_normal((4, 5)).astype(np.float32)
    pairs = run_case("output a = scatter(x, p, u, axis=1)\n  output b = scatter(x, i, v, axis=0, reduction=add)",
                     {"x": "f32[3, 5]", "p": "i64[3, 5]", "u": "f32[3, 5]", "i": "i64[4, 5]", "v": "f32[4, 5]"},
                     {"x": x, "p": perm, "u": u, "i": idx, "v": u2})
    tx = torch.from_numpy(x)
    agree(pairs, tx.scatter(1, torch.from_numpy(perm), torch.from_numpy(u)),
          tx.scatter_add(0, torch.from_numpy(idx), torch.from_numpy(u2)))
