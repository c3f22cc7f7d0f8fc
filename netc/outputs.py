"""Standard output as a place the CLI writes to: a closed stdout is an error before any
work, not a silent success (`netc check f.net >&-` would otherwise print nothing and exit 0)."""

from __future__ import annotations

import os
import sys

from netc.boundary import NetcEnvironmentError


def check_stdout() -> None:
    """Refuse to run with no usable standard output."""
    stream = sys.stdout
    if stream is None:
        raise NetcEnvironmentError("standard output is closed; nothing could be printed",
                                   None, ["redirect it to a file or /dev/null instead of closing it"])
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # a replaced stream (tests, notebooks): fine
        return
    try:
        os.fstat(fd)
    except OSError:
        raise NetcEnvironmentError("standard output is closed; nothing could be printed", None,
                                   ["redirect it to a file or /dev/null instead of closing it"]) from None
