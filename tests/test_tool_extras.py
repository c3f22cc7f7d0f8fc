"""The editor and picture commands name the extra to install when its package is missing,
and `import netc` loads none of those packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netc import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, module, extra", [
    (["lsp"], "pygls", "lsp"),
    (["graph", str(ROOT / "examples" / "mnist_mlp.net"), "-o", "OUT/m.dot"], "graphviz", "graph"),
    (["view", str(ROOT / "examples" / "mnist_mlp.net"), "--no-browser"], "netron", "view"),
    (["bench", str(ROOT / "examples" / "mnist_mlp.net"), "--iterations", "1", "--plot", "OUT/l.png"],
     "matplotlib", "plot"),
])
def test_missing_extra_is_named(argv, module, extra, monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what `import module` sees when it is not installed
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"needs the '{extra}' extra: pip install 'netc[{extra}]'" in err
    assert not list(tmp_path.iterdir())


def test_netc_import_loads_no_extra() -> None:
    code = ("import sys, netc, netc.cli; netc.cli.build_parser(); "
            "print(sorted(m for m in ('pygls', 'lsprotocol', 'graphviz', 'netron', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
