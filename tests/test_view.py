"""`netc view`: Netron serves the compiled model over loopback; its nodes carry netc's layer
names and .net source locations."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import onnx
import pytest

pytest.importorskip("netron", reason="the 'view' extra is not installed: pip install 'netc[view]'")

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serves_page_and_model_with_source_locations() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "netc", "view", "examples/lenet5.net", "--no-browser",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        page = fetch(f"http://127.0.0.1:{port}/").decode()
        assert "<title>Netron</title>" in page and 'content="/data/lenet5.onnx"' in page
        model = onnx.load_from_string(fetch(f"http://127.0.0.1:{port}/data/lenet5.onnx"))
        docs = {n.name: n.doc_string for n in model.graph.node}
        conv = "conv2d0"  # an op's first node is named after its layer
        text = (ROOT / "examples" / "lenet5.net").read_text().split("\n")
        where = docs[conv].rsplit(" at ", 1)[1]
        assert docs[conv].startswith("conv2d0 (conv2d) at lenet5.net:")
        line, col = map(int, where.split(":")[1:])
        assert text[line - 1][col - 1:].startswith("conv2d(6")
        assert all(d for d in docs.values())
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"at http://127.0.0.1:{port}/" in out
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
