"""Progress on stderr: drawn under a real pseudo-terminal, absent when stderr is a pipe or
with -q, and tqdm not even imported then."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETC = [sys.executable, "-m", "netc"]


def _under_pty(args: list[str], cwd: Path, size: tuple[int, int] | None = (24, 100)) -> tuple[int, str, str]:
    """Run netc with stderr on a pseudo-terminal (stdout on a pipe); returns the exit code,
    stdout and what the terminal showed."""
    master, slave = pty.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    proc = subprocess.Popen(NETC + args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                            close_fds=True)
    os.close(slave)
    shown = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        shown.append(data)
    out, _ = proc.communicate(timeout=120)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(shown).decode(errors="replace")


def test_compile_shows_stages_with_seconds_on_a_terminal(tmp_path: Path) -> None:
    code, out, shown = _under_pty(["compile", str(ROOT / "examples/lenet5.net"), "-o", "m.onnx"], tmp_path)
    assert code == 0 and out.startswith("wrote m.onnx")
    final = shown.replace("\r\n", "\n").split("\r")[-2]  # the last drawing of the stage line
    for stage in ("parse", "elaborate", "weights", "lower", "save"):
        assert f"{stage} " in final and " s" in final
    assert "netc:" not in out


def test_an_unsized_terminal_still_shows_progress(tmp_path: Path) -> None:
    code, _, shown = _under_pty(["compile", str(ROOT / "examples/lenet5.net"), "-o", "m.onnx"], tmp_path, None)
    assert code == 0 and "lower" in shown


def test_verify_counts_seeds_and_ops(tmp_path: Path) -> None:
    code, out, shown = _under_pty(["verify", str(ROOT / "examples/lenet5.net"), "--seeds", "2"], tmp_path)
    assert code == 0 and "verify LeNet5" in out
    assert "verify seeds: 0/2 seeds" in shown and "seed 1: reference:" in shown and "ops [" in shown


def test_quiet_and_pipes_show_nothing(tmp_path: Path) -> None:
    code, _, shown = _under_pty(["compile", "-q", str(ROOT / "examples/lenet5.net"), "-o", "m.onnx"], tmp_path)
    assert code == 0 and shown.strip() == ""
    code, _, shown = _under_pty(["-q", "verify", str(ROOT / "examples/lenet5.net"), "--seeds", "1"], tmp_path)
    assert code == 0 and shown.strip() == ""
    piped = subprocess.run([*NETC, "compile", str(ROOT / "examples/lenet5.net"), "-o", "m.onnx"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""


def test_tqdm_is_not_imported_without_a_terminal(tmp_path: Path) -> None:
    script = ("import sys; from netc.cli import main; "
              f"code = main(['compile', {str(ROOT / 'examples/lenet5.net')!r}, '-o', 'm.onnx']); "
              "print(code, 'tqdm' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-2:] == ["0", "False"], done.stdout + done.stderr
