"""The examples of docs/api.md run as doctests from the repository root."""

from __future__ import annotations

import doctest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_api_doc_examples(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(ROOT)
    result = doctest.testfile(str(ROOT / "docs" / "api.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False,
                              globs={"tmp": tmp_path})
    assert result.attempted >= 15
    assert result.failed == 0, f"{result.failed} example(s) of docs/api.md failed (see the output above)"
    assert (tmp_path / "mnist.onnx").is_file()
