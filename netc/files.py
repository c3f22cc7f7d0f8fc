"""Writing outputs so that nothing is ever half-written: a temporary file in the target
folder, fsync, then an atomic rename. An interrupted write leaves no partial file; a
target that is not ours to replace (an input, a device, a FIFO) is refused first."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from netc.boundary import os_error
from netc.dsl.errors import NetcInputError

TEMP_STEM_CHARS = 64  # the temporary's name keeps this much of the target's: 255-byte names still fit


def check_output_path(output: str | Path, *inputs: str | Path | None) -> Path:
    """Where `output` will really be written (through symlinks), after refusing what must
    not be written: a path naming a folder, an existing target that is not a regular file
    (a directory, a device such as /dev/null, a FIFO, a socket), any of `inputs` (compared
    by file identity, so another spelling or a link is caught), and a folder that is missing
    or not writable. Called before the work, so a mistake costs nothing."""
    text = str(output)
    if not text:
        raise NetcInputError("the output path is empty")
    if text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
        raise NetcInputError(f"-o {_show(text)} names a folder; give a file name", None,
                             [f"for example -o {_show(text.rstrip('/' + os.sep) or '.')}/model.onnx"])
    try:
        final = Path(os.path.realpath(text))
        target = os.stat(final) if final.exists() else None
    except (OSError, ValueError) as err:
        raise NetcInputError(f"cannot use -o {_show(text)}: {getattr(err, 'strerror', None) or err}") from None
    if target is not None:
        if stat.S_ISDIR(target.st_mode):
            raise NetcInputError(f"-o {_show(text)} is a directory; give a file name")
        if not stat.S_ISREG(target.st_mode):
            raise NetcInputError(f"-o {_show(text)} is {_kind(target.st_mode)}; netc writes only regular files",
                                 None, ["choose a file name; netc replaces an existing file atomically"])
        for src in inputs:
            if src is not None and _same_file(target, src):
                raise NetcInputError(f"refusing to overwrite the input file {_show(str(src))}", None,
                                     ["choose another -o path"])
    folder = final.parent
    if not folder.is_dir():
        raise NetcInputError(f"cannot write {_show(text)}: folder {_show(str(folder))} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NetcInputError(f"cannot write {_show(text)}: folder {_show(str(folder))} is not writable", None,
                             ["write somewhere else with -o"])
    return final


def _same_file(target: os.stat_result, other: str | Path) -> bool:
    try:
        theirs = os.stat(other)
    except (OSError, ValueError):
        return False
    return (theirs.st_dev, theirs.st_ino) == (target.st_dev, target.st_ino)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _show(text: str, limit: int = 160) -> str:
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextlib.contextmanager
def atomic_path(output: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside where `output` really lives (through symlinks: the
    rename then replaces the file the link points to, on its own file system); on success
    rename it onto that file. The temporary's name is bounded, whatever the target's."""
    final = Path(os.path.realpath(output))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name[:TEMP_STEM_CHARS]}.", suffix=suffix + ".tmp",
                                   dir=final.parent)
    except OSError as err:
        raise os_error(err, f"write {output}") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, final)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(err, OSError):  # a full disk, a quota: name the file being written
            raise os_error(err, f"write {output}") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(output: str | Path, write: Callable[[Path], None], suffix: str = "") -> None:
    with atomic_path(output, suffix) as tmp:
        write(tmp)
