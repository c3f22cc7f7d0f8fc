"""`netc bench --plot`: latency percentiles and throughput against batch size."""

from __future__ import annotations

from pathlib import Path

import pytest

from netc import cli

pytest.importorskip("matplotlib", reason="the 'plot' extra is not installed: pip install 'netc[plot]'")

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "examples" / "mnist_mlp.net")


def test_plot_png_and_svg(tmp_path: Path) -> None:
    png, svg = tmp_path / "latency.png", tmp_path / "latency.svg"
    args = ["bench", MODEL, "--batch", "1,2,8", "--iterations", "3", "--warmup", "0"]
    assert cli.main([*args, "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert cli.main([*args, "--plot", str(svg)]) == 0
    text = svg.read_text()
    for label in ("p50", "p90", "p99", "throughput", "latency (ms)", "samples / s", "batch (N)"):
        assert label in text, label


def test_bad_plot_path_fails_before_running(tmp_path: Path, capsys) -> None:
    assert cli.main(["bench", MODEL, "--iterations", "1", "--plot", str(tmp_path / "x.jpg")]) == 1
    assert "write a .png, .svg or .pdf picture" in capsys.readouterr().err
    assert cli.main(["bench", MODEL, "--iterations", "1", "--plot", str(tmp_path / "missing" / "x.png")]) == 1
    assert not list(tmp_path.rglob("*.png"))
