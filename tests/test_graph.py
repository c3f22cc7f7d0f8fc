"""`netc graph`: diagrams rendered by Graphviz, checked in a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netc import api, cli
from netc.compiler.elaborate import NetworkOptions, choose_network, elaborate_network

pytest.importorskip("graphviz", reason="the 'graph' extra is not installed: pip install 'netc[graph]'")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` is not installed "
                                                                  "(tools/setup.sh installs it)")
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium (tools/setup.sh installs it)")

# The page inlines the SVG and, once laid out, writes what it measured into the DOM, which
# `--dump-dom` prints: the picture's size and every text the browser rendered.
PAGE = """<!doctype html><html><body>{svg}
<script>
const svg = document.querySelector("svg");
const box = svg.getBBox();
const texts = [...svg.querySelectorAll("text")].filter(t => t.getBBox().width > 0).map(t => t.textContent);
const titles = [...svg.querySelectorAll("g.node > title")].map(t => t.textContent);
const out = document.createElement("pre");
out.id = "measured";
out.textContent = JSON.stringify({width: box.width, height: box.height, texts, titles});
document.body.appendChild(out);
</script></body></html>"""


def graph_of(name: str, **settings):
    program = api.load(EXAMPLES / name)
    return elaborate_network(program, choose_network(program, None), NetworkOptions(settings))


def render_in_browser(svg: Path, tmp_path: Path) -> dict:
    import json

    page = tmp_path / (svg.stem + ".html")
    text = svg.read_text()
    page.write_text(PAGE.replace("{svg}", text[text.index("<svg"):]))
    result = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="measured">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the page did not run its script:\n{result.stderr[-2000:]}"
    import html

    return json.loads(html.unescape(match.group(1)))


@needs_dot
@needs_browser
@pytest.mark.parametrize("example", ["resnet50.net", "seq2seq_attention.net"])
def test_svg_renders_in_browser_with_every_layer(example: str, tmp_path: Path) -> None:
    out = tmp_path / "model.svg"
    assert cli.main(["graph", str(EXAMPLES / example), "-o", str(out), "--depth", "2"]) == 0
    measured = render_in_browser(out, tmp_path)
    assert measured["width"] > 200 and measured["height"] > 200
    graph = graph_of(example)
    layers = [op.label for op in graph.walk() if op.kind != "constant"]
    assert layers and set(layers) <= set(measured["titles"])  # every layer is a node
    shown = set(measured["texts"])
    assert {label.rsplit(".", 1)[-1] for label in layers} <= shown  # and its name is drawn
    assert any("params" in t for t in shown)
    assert any(re.fullmatch(r"f32\[N, \d+(, \d+, \d+)?\]|f32\[T, N, \d+\]", t) for t in shown)  # edge shapes


@needs_dot
def test_depth_collapses_blocks_and_recurrences_loop(tmp_path: Path) -> None:
    out = tmp_path / "r.dot"
    assert cli.main(["graph", str(EXAMPLES / "resnet50.net"), "-o", str(out), "--depth", "0"]) == 0
    dot = out.read_text()
    assert "bottleneck0.conv2d0" not in dot and "\tbottleneck0 [label" in dot  # one node per instance
    assert "block, 10 ops" in dot and "cluster_" not in dot
    # bottleneck0: 3 convs and the projection (4,096 + 36,864 + 16,384 + 16,384 weights) and
    # 4 batchnorms (4 tensors of their width each: 64, 64, 256, 256)
    assert f"{4096 + 36864 + 16384 + 16384 + 4 * (64 + 64 + 256 + 256):,} params" in dot
    out = tmp_path / "s.dot"
    assert cli.main(["graph", str(EXAMPLES / "seq2seq_attention.net"), "-o", str(out), "--depth", "0"]) == 0
    dot = out.read_text()
    assert re.search(r"recur0 -> recur0 \[[^]]*each step", dot)  # a collapsed recurrence loops
    out = tmp_path / "s1.dot"
    assert cli.main(["graph", str(EXAMPLES / "seq2seq_attention.net"), "-o", str(out)]) == 0
    dot = out.read_text()
    assert "cluster_recur0" in dot and "\"recur0.tanh0\" -> recur0" in dot  # the step, and the edge back


def test_dot_without_graphviz_program_and_a_clear_error_for_svg(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere
    assert cli.main(["graph", str(EXAMPLES / "mnist_mlp.net"), "-o", str(tmp_path / "m.dot")]) == 0
    assert "digraph" in (tmp_path / "m.dot").read_text()
    assert cli.main(["graph", str(EXAMPLES / "mnist_mlp.net"), "-o", str(tmp_path / "m.svg")]) == 1
    err = capsys.readouterr().err
    assert "needs Graphviz's `dot` program" in err and "apt-get install graphviz" in err
    assert not (tmp_path / "m.svg").exists()


def test_bad_output_suffix(tmp_path: Path, capsys) -> None:
    assert cli.main(["graph", str(EXAMPLES / "mnist_mlp.net"), "-o", str(tmp_path / "m.jpeg")]) == 1
    assert "use .svg, .png or .dot" in capsys.readouterr().err


@needs_dot
def test_png_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "m.png"
    done = subprocess.run([sys.executable, "-m", "netc", "graph", str(EXAMPLES / "elman_tagger.net"), "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
