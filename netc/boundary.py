"""The error boundary: failures that a user's input or environment causes, raised by the
libraries netc calls (the OS, NumPy, onnxruntime), become `NetcError`s that say what
failed and where; everything else stays an exception, so that exit code 3 means a bug in
netc and nothing else.

`translate` decides; `guarded` applies it to an API function; `main` applies it to every
command.
"""

from __future__ import annotations

import errno
import functools
import re
from collections.abc import Callable
from typing import TypeVar

from netc.dsl.errors import NetcError, Span, first_line

F = TypeVar("F", bound=Callable)


class NetcRuntimeError(NetcError):
    """onnxruntime (or the reference) failed on a model and inputs that netc accepted."""


class NetcEnvironmentError(NetcError):
    """The machine refused: a file that cannot be read or written, a full disk, no memory."""


_ORT_MODULE = "onnxruntime"
_NODE = re.compile(r"running (\w+) node\. Name:'([^']*)' Status Message: (.*)", re.S)
_SIZE_HINT = re.compile(r"shape|size|dimension|reshape|broadcast|seq_length|sequence_lens", re.I)


def is_onnxruntime_error(err: BaseException) -> bool:
    """Any of onnxruntime's own exception types (Fail, InvalidArgument, RuntimeException...)."""
    return type(err).__module__.startswith(_ORT_MODULE)


def translate(err: BaseException, spans: dict[str, Span] | None = None) -> NetcError | None:
    """The `NetcError` for `err`, or None when `err` is a bug in netc. `spans` maps a model's
    op labels to their source, so a run-time failure can point at the `.net` line."""
    if isinstance(err, NetcError):
        return err
    if is_onnxruntime_error(err):
        return onnxruntime_error(err, spans)
    if isinstance(err, MemoryError):
        detail = first_line(err) or "an allocation failed"
        return NetcEnvironmentError(f"out of memory: {detail}", None,
                                    ["use smaller sizes (--set, --batch) or fewer parameters"])
    if isinstance(err, OSError):
        return os_error(err)
    if isinstance(err, FloatingPointError):
        return NetcRuntimeError(f"numeric error: {first_line(err)}")
    return None


def os_error(err: OSError, action: str = "") -> NetcEnvironmentError:
    """`cannot write out.onnx: No space left on device`."""
    name = err.filename if err.filename is not None else ""
    reason = err.strerror or first_line(err) or type(err).__name__
    if isinstance(err, UnicodeError):
        reason = first_line(err)
    doing = action or "access"
    where = f"{doing} {_shorten(str(name))}" if name != "" else doing if action else "a file operation failed"
    hints = {errno.ENOSPC: "free some space, or write somewhere else with -o",
             errno.EROFS: "the file system is read-only: write somewhere else with -o",
             errno.EACCES: "check the permissions, or write somewhere else with -o",
             errno.ENAMETOOLONG: "use a shorter file name"}
    if name == "" and not action and err.errno in (errno.ENOSPC, errno.EBADF, errno.EIO, errno.EPIPE):
        where, name = "write the output", "-"  # print() to a full or closed stdout names no file
    prefix = "cannot " if name != "" or action else ""
    return NetcEnvironmentError(f"{prefix}{where}: {reason}", None, [hints.get(err.errno or 0, "")])


def onnxruntime_error(err: BaseException, spans: dict[str, Span] | None = None) -> NetcRuntimeError:
    """`onnxruntime failed in Div (div0): Integer division by zero`, at the op's source line
    when the model came from a `.net` file."""
    text = str(err).strip()
    found = _NODE.search(text)
    span = None
    if found:
        kind, node, detail = found.group(1), found.group(2), found.group(3)
        span = span_of(node, spans or {})
        where = f"{kind} ({node})" if node else kind
        message = f"onnxruntime failed in {where}: {tidy_message(detail)}"
    else:
        message = f"onnxruntime failed: {tidy_message(text)}"
    hints = []
    if _SIZE_HINT.search(text):
        hints.append("the input sizes may not fit the model: check them, or give symbolic sizes with "
                     "--set NAME=...")
    if "division by zero" in text.lower():
        hints.append("an integer input used as a divisor holds 0")
    return NetcRuntimeError(message, span, hints)


def span_of(node: str, spans: dict[str, Span]) -> Span | None:
    """The span of the op a node was lowered from: its name is the op's label, `_`, more."""
    cut = len(node)
    while cut > 0:
        if node[:cut] in spans:
            return spans[node[:cut]]
        cut = node.rfind("_", 0, cut)
    return None


def guarded(fn: F) -> F:
    """`fn`, with environment and run-time failures raised as `NetcError`s."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NetcError:
            raise
        except Exception as err:
            translated = translate(err)
            if translated is None:
                raise
            raise translated from err

    return wrapper  # type: ignore[return-value]


def tidy_message(text: str) -> str:
    """One line of onnxruntime's message, without its source-file prefixes."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text.strip())
    line = (text.splitlines() or [""])[0]
    line = re.sub(r"(/[\w./-]+\.(?:h|cc|cpp):\d+ )+", "", line)  # onnxruntime's own source locations
    line = re.sub(r"\w+\.cc:\d+ \w+ ", "", line)
    line = re.sub(r"onnxruntime::[\w:]+\([^()]*\) ", "", line)  # a C++ signature
    return line[:400]


def _shorten(text: str, limit: int = 160) -> str:
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."
