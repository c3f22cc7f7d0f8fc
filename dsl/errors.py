"""Source spans, the error hierarchy and the compiler-style renderer.

Every error a user can cause is a `NetcError` carrying the `Span` of the source that
caused it; the CLI turns it into exit code 1. Anything else escaping is a bug in netc.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open region of a source file; lines and columns are 1-based."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class NetcError(Exception):
    """A mistake in the user's input, located in their source when a span is known."""

    kind = "error"

    def __init__(self, message: str, span: Span | None = None, hints: Iterable[str] = ()):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hints = [h for h in hints if h]
        self.notes: list[tuple[Span, str]] = []

    def with_note(self, span: Span | None, message: str) -> NetcError:
        """Attach a secondary location, e.g. the block call that led to this error. A note
        already attached (same place, same words, as a recursive block repeats) is kept once."""
        if span is not None and (span, message) not in self.notes:
            self.notes.append((span, message))
        return self

    def render(self, sources: SourceCache | None = None) -> str:
        return render(self, sources or SourceCache())

    def __str__(self) -> str:
        """The located message, as the command line prints it: `file:line:col: error: ...`,
        the source line with a caret, hints and notes (so a notebook's traceback shows it)."""
        return render(self, SourceCache())


class NetcSyntaxError(NetcError):
    """The text does not follow the grammar."""


class NetcNameError(NetcError):
    """An unknown or duplicate name, keyword or layer."""


class NetcTypeError(NetcError):
    """A value of the wrong kind: wrong arity, argument type or dtype."""


class NetcShapeError(NetcError):
    """Tensor shapes that do not fit together."""


class NetcImportError(NetcError):
    """An import that cannot be resolved, escapes its root, or forms a cycle."""


class NetcWeightsError(NetcError):
    """A weight file that is missing, corrupt, or does not match the parameters."""


class NetcInputError(NetcError):
    """Run-time inputs with wrong names, shapes or dtypes, or a bad command-line value."""


class NetcLimitError(NetcError):
    """A resource guard tripped: too many parameters, ops, or too deep an elaboration."""


class NetcVerifyError(NetcError):
    """onnxruntime and the reference interpreter disagree."""


def first_line(err: BaseException, limit: int = 400) -> str:
    """The first line of a foreign exception's message, clipped: enough to say what went
    wrong inside a netc error (empty when the message is)."""
    return (str(err).strip().splitlines() or [""])[0][:limit]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' hint for an unknown name, or None when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    if not matches:
        return None
    # Offer only the near-best: 'hidden' for 'hiden', without 'identity' and 'dense' too.
    best = difflib.SequenceMatcher(None, name, matches[0]).ratio()
    matches = [m for m in matches if difflib.SequenceMatcher(None, name, m).ratio() >= best - 0.15]
    return "did you mean " + " or ".join(f"'{m}'" for m in matches) + "?"


# The texts the parser last read, by file name (a few hundred at most), so that an error
# quotes the text that was compiled — also for `compile_source` text that is on no disk.
_PARSED: OrderedDict[str, str] = OrderedDict()
_PARSED_MAX = 256


def remember_source(file: str, text: str) -> None:
    _PARSED[file] = text
    _PARSED.move_to_end(file)
    while len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)


@dataclass
class SourceCache:
    """Source texts by file name, so the renderer can quote lines."""

    texts: dict[str, str] = field(default_factory=dict)

    def line(self, file: str, line: int) -> str | None:
        if file not in self.texts and file in _PARSED:
            self.texts[file] = _PARSED[file]
        if file not in self.texts:
            try:
                self.texts[file] = Path(file).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):
                return None
        text = self.texts[file].removeprefix("\ufeff")
        lines = text.split("\n")  # as the parser counts lines: "\f" or U+2028 start none
        return lines[line - 1].removesuffix("\r") if 0 < line <= len(lines) else None


def _quote(span: Span, sources: SourceCache) -> list[str]:
    text = sources.line(span.file, span.line)
    if text is None:
        return []
    raw = text.rstrip()
    if len(raw) > QUOTE_WIDTH:  # a 2M-character line: quote a window around the caret
        raw, span = _window(raw, span)
    # Columns count characters; a tab shows as up to 4 spaces, so measure the caret on the
    # expanded text. Other control characters would garble the terminal: show them as '?'.
    start = len(raw[:max(span.col - 1, 0)].expandtabs(4))
    end = span.end_col - 1 if span.end_line == span.line else len(raw)
    end = len(raw[:max(end, 0)].expandtabs(4))
    text = "".join(c if c.isprintable() or c == "\t" else "?" for c in raw).expandtabs(4)
    end = max(min(end, len(text)), start + 1)
    return ["    " + text, "    " + " " * start + "^" + "~" * (end - start - 1)]


QUOTE_WIDTH = 1000  # the most characters of a source line an error quotes
MESSAGE_WIDTH = 1000  # a message quoting a 2M-character name shows its ends only


def _clip(text: str) -> str:
    if len(text) <= MESSAGE_WIDTH:
        return text
    return text[:MESSAGE_WIDTH - 300] + f" ... ({len(text) - MESSAGE_WIDTH + 100:,} characters left out) ... " \
        + text[-200:]


def _window(raw: str, span: Span) -> tuple[str, Span]:
    """The part of a long line around `span`'s column, marked with `...`, and the span
    moved to match."""
    start = max(span.col - 1 - QUOTE_WIDTH // 2, 0)
    end = start + QUOTE_WIDTH
    head = "..." if start > 0 else ""
    tail = "..." if end < len(raw) else ""
    shift = start - len(head)
    last = span.end_col - shift if span.end_line == span.line else span.end_col
    moved = Span(span.file, span.line, span.col - shift, span.line, min(max(last, span.col - shift + 1),
                                                                        len(head) + QUOTE_WIDTH + 1))
    return head + raw[start:end] + tail, moved


def render(error: NetcError, sources: SourceCache) -> str:
    """`file:line:col: error: message`, the line, a caret under the span, hints, notes."""
    where = f"{error.span}: " if error.span else ""
    lines = [f"{where}error: {_clip(error.message)}"]
    if error.span:
        lines += _quote(error.span, sources)
    lines += [f"  hint: {_clip(h)}" for h in error.hints]
    for span, message in error.notes:
        lines.append(f"{span}: note: {_clip(message)}")
        lines += _quote(span, sources)
    return "\n".join(lines)
