"""The VS Code extension in editors/vscode: its manifest and configuration are complete, and
its TextMate grammar passes `vscode-tmgrammar-test` on annotated copies of the examples
(tests/grammar/*.net: `# ^^^ scope` lines assert the scopes of the line above)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "editors" / "vscode"
GRAMMAR_TESTS = sorted((ROOT / "tests" / "grammar").glob("*.net"))


def test_manifest_points_at_files_that_exist() -> None:
    manifest = json.loads((EXTENSION / "package.json").read_text())
    [language] = manifest["contributes"]["languages"]
    [grammar] = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".net"] and grammar["language"] == language["id"]
    config = json.loads((EXTENSION / language["configuration"]).read_text())
    assert config["comments"]["lineComment"] == "#"
    assert ["{", "}"] in config["brackets"] and "indentationRules" in config
    syntax = json.loads((EXTENSION / grammar["path"]).read_text())
    assert syntax["scopeName"] == grammar["scopeName"] == "source.netc"
    assert (EXTENSION / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    assert manifest["contributes"]["configuration"]["properties"]["netc.server.command"]["default"] == ["netc", "lsp"]


def test_grammar_tests_cover_five_examples() -> None:
    assert len(GRAMMAR_TESTS) >= 5
    for path in GRAMMAR_TESTS:
        lines = path.read_text().split("\n")
        assert lines[0].startswith('# SYNTAX TEST "source.netc"')
        assert sum(1 for line in lines if line.startswith("#") and ("^" in line or "<-" in line)) >= 5


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed: the TextMate grammar "
                    "tests run vscode-tmgrammar-test (tools/setup.sh installs it when node is present)")
def test_textmate_grammar() -> None:
    tool = EXTENSION / "node_modules" / ".bin" / "vscode-tmgrammar-test"
    assert tool.exists(), "vscode-tmgrammar-test is missing: run tools/setup.sh (npm install in editors/vscode)"
    done = subprocess.run([str(tool), "-g", "syntaxes/netc.tmLanguage.json", *map(str, GRAMMAR_TESTS)],
                          cwd=EXTENSION, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert done.stdout.count("run successfuly") == len(GRAMMAR_TESTS)
    syntax = subprocess.run(["node", "--check", "extension.js"], cwd=EXTENSION, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
