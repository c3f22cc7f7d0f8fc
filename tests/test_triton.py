"""`netc export triton`: the repository's config parsed by Triton's own `ModelConfig`
message and cross-checked against the ONNX model, and the exported models served by a real
`tritonserver` on 127.0.0.1 and queried with `tritonclient` over HTTP, equal to `netc run`.

The server lives in its own environment (`.venv-triton`, made by tools/setup.sh: the
bundled server of nvidia-pytriton needs numpy < 2)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sysconfig
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

import netc
from netc import cli
from netc.api import CompileOptions
from netc.runtime.triton import TRITON_TYPES
from tests.conftest import EXAMPLES, ROOT

TRITON_PY = ROOT / ".venv-triton" / "bin" / "python"
SERVE = ROOT / "tests" / "triton" / "serve_repository.py"
MLP = EXAMPLES / "mnist_mlp.net"
TAGGER = EXAMPLES / "bigru_tagger.net"
START_DEADLINE = 120  # seconds for the server to come up

if not TRITON_PY.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{TRITON_PY} is missing: tools/setup.sh makes it")
    pytest.skip("no .venv-triton (tools/setup.sh makes it)", allow_module_level=True)


def export(*argv) -> int:
    return cli.main(["export", "triton", *map(str, argv)])


def parse_configs(*model_dirs: Path) -> list[dict]:
    out = subprocess.run([str(TRITON_PY), str(SERVE), *map(str, model_dirs), "--parse"], capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def onnx_io(model_dir: Path):
    model = onnx.load(str(model_dir / "1" / "model.onnx"))
    return model, list(model.graph.input), list(model.graph.output)


def dims(value) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    assert export(MLP, "-o", root, "--dynamic-batching", "--max-batch", "16", "--instances", "2") == 0
    assert export(TAGGER, "-o", root, "--name", "tagger", "--set", "V=100", "--set", "hidden=8") == 0
    return root


def test_config_is_valid_and_matches_the_model(repo):
    mlp, tagger = parse_configs(repo / "mnist_mlp", repo / "tagger")
    assert mlp["name"] == "mnist_mlp" and mlp["platform"] == "onnxruntime_onnx"
    assert mlp["max_batch_size"] == 16 and "dynamic_batching" in mlp
    assert mlp["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    for config, model_dir, batched in ((mlp, repo / "mnist_mlp", True), (tagger, repo / "tagger", False)):
        model, inputs, outputs = onnx_io(model_dir)
        onnx.checker.check_model(model, full_check=True)
        for entries, values in ((config["input"], inputs), (config["output"], outputs)):
            assert [e["name"] for e in entries] == [v.name for v in values]
            for entry, value in zip(entries, values):
                assert entry["data_type"] == TRITON_TYPES[value.type.tensor_type.elem_type]
                want = dims(value)[1:] if batched else dims(value)
                assert [int(d) for d in entry["dims"]] == [d if isinstance(d, int) else -1 for d in want]
    # Time-major [T, N] inputs: Triton cannot batch along the first axis.
    assert tagger.get("max_batch_size", 0) == 0 and "dynamic_batching" not in tagger
    assert [int(d) for d in tagger["input"][0]["dims"]] == [-1, -1]


def test_export_errors(repo, tmp_path, capsys):
    assert export(TAGGER, "-o", tmp_path, "--dynamic-batching") == 1
    assert "cannot be batched by Triton" in capsys.readouterr().err
    assert export(MLP, "-o", repo) == 1  # mnist_mlp is there already
    assert "exists already" in capsys.readouterr().err
    assert export(MLP, "-o", tmp_path, "--name", "a/b") == 1
    assert "Triton model name" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def _free_ports(k: int) -> list[int]:
    sockets = [socket.socket() for _ in range(k)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def server(repo):
    http, grpc, metrics = _free_ports(3)
    env = {**os.environ, "LD_LIBRARY_PATH": sysconfig.get_config_var("LIBDIR") or ""}
    proc = subprocess.Popen([str(TRITON_PY), str(SERVE), str(repo / "mnist_mlp"), str(repo / "tagger"),
                             "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "NETC-TRITON-READY" in line:  # the server's own log shares the stream
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(START_DEADLINE):
            raise AssertionError("tritonserver did not start:\n" + "".join(lines[-40:]))
        yield f"127.0.0.1:{http}", lines
    finally:
        proc.stdin.close()  # the server script stops when its stdin closes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _request(arrays: dict[str, np.ndarray]) -> list:
    import tritonclient.http as http
    from tritonclient.utils import np_to_triton_dtype

    requests = []
    for key, value in arrays.items():
        tensor = http.InferInput(key, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value)
        requests.append(tensor)
    return requests


def infer(client, name: str, arrays: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    result = client.infer(name, _request(arrays))
    return {o: result.as_numpy(o) for o in outputs}


def test_served_models_match_netc_run(server):
    http = pytest.importorskip("tritonclient.http", reason="the client needs the 'triton' extra")
    client = http.InferenceServerClient(server[0], concurrency=4)
    assert client.is_server_live() and client.is_model_ready("mnist_mlp") and client.is_model_ready("tagger")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 784)).astype(np.float32)
    np.testing.assert_allclose(infer(client, "mnist_mlp", {"image": x}, ["probs"])["probs"],
                               netc.run(MLP, {"image": x})["probs"], rtol=1e-5, atol=1e-6)
    words = rng.integers(0, 100, (7, 3)).astype(np.int64)
    lengths = np.array([7, 3, 5], np.int32)
    got = infer(client, "tagger", {"words": words, "lengths": lengths}, ["tags"])["tags"]
    compiled = netc.compile_file(TAGGER, CompileOptions(settings={"V": 100, "hidden": 8}))
    np.testing.assert_allclose(got, netc.run(compiled, {"words": words, "lengths": lengths})["tags"],
                               rtol=1e-5, atol=1e-6)


def test_concurrent_requests_are_batched_and_correct(server):
    http = pytest.importorskip("tritonclient.http", reason="the client needs the 'triton' extra")
    client = http.InferenceServerClient(server[0], concurrency=8)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1 + k % 3, 784)).astype(np.float32) for k in range(24)]
    # The HTTP client is not thread-safe; its own async_infer sends requests concurrently.
    pending = [client.async_infer("mnist_mlp", _request({"image": x})) for x in xs]
    got = [p.get_result(timeout=60).as_numpy("probs") for p in pending]
    want = netc.run(MLP, {"image": np.concatenate(xs)})["probs"]
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-5, atol=1e-6)
    # Dynamic batching ran some requests together: an execution with more rows than any
    # one request (3) has.
    executed = [int(m.group(1)) for line in server[1] for m in re.finditer(r"EXECUTE mnist_mlp (\d+)", line)]
    assert sum(executed) >= sum(len(x) for x in xs) and max(executed) > 3, executed
