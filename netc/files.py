"""Writing outputs so that nothing is ever half-written: a temporary file in the target
folder, fsync, then an atomic rename. An interrupted write leaves no partial file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from netc.dsl.errors import NetcInputError


def check_output_path(output: str | Path, *inputs: str | Path | None) -> Path:
    """Refuse to write over an input file, or into a folder that does not exist."""
    out = Path(output)
    for src in inputs:
        if src is not None and Path(src).exists() and out.exists() and out.resolve() == Path(src).resolve():
            raise NetcInputError(f"refusing to overwrite the input file {src}", None,
                                 ["choose another -o path"])
    if out.is_dir():
        raise NetcInputError(f"-o {output} is a directory; give a file name")
    if not out.resolve().parent.is_dir():
        raise NetcInputError(f"cannot write {output}: folder {out.resolve().parent} does not exist")
    return out


@contextlib.contextmanager
def atomic_path(output: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `output`; on success rename it onto `output`."""
    out = Path(output)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix + ".tmp", dir=out.resolve().parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(output: str | Path, write: Callable[[Path], None], suffix: str = "") -> None:
    with atomic_path(output, suffix) as tmp:
        write(tmp)
