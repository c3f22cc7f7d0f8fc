"""The LALR tables of the grammar, cached on disk between runs.

Building the tables takes 70-90 ms on every start; loading them from the cache about
5 ms (measured with `benchmarks/cold_compile.py`'s breakdown). The cache is a file in the
user's cache folder (`$NETC_CACHE_DIR`, else `$XDG_CACHE_HOME/netc`, else
`~/.cache/netc`) named after a hash of the grammar, the Lark version and the Python
version, so a changed grammar or library never reads stale tables. It is written
atomically (temporary file + rename); a cache that cannot be read or written (read-only
home, corrupt file, another Lark) is ignored and the tables are built as without it.
`NETC_CACHE_DIR=` (empty) turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from lark import Lark
from lark import __version__ as lark_version


def cache_dir() -> Path | None:
    """The folder for netc's caches, or None when caching is turned off."""
    configured = os.environ.get("NETC_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "netc"


def cache_path(grammar: str, options: dict) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    key = "\0".join([grammar, repr(sorted(options.items())), lark_version, sys.version])
    return folder / f"grammar-{hashlib.sha256(key.encode()).hexdigest()[:20]}.lark"


def cached_lark(grammar: str, **options) -> Lark:
    """`Lark(grammar, **options)`, from the on-disk cache when it holds these tables."""
    path = cache_path(grammar, options)
    if path is not None:
        try:
            with open(path, "rb") as f:
                return Lark.load(f)
        except Exception:  # missing, truncated, written by another version: build instead
            pass
    parser = Lark(grammar, **options)
    if path is not None:
        _store(parser, path)
    return parser


def _store(parser: Lark, path: Path) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            parser.save(f)
        os.replace(tmp, path)
    except OSError:  # a read-only or full disk: run without the cache
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
