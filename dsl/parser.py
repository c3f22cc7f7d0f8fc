"""Parse `.net` text into the AST, turning Lark's errors into located `NetcSyntaxError`s."""

from __future__ import annotations

import functools
import math
from pathlib import Path

from lark import Lark, Token, Tree, UnexpectedInput, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from netc.dsl import ast
from netc.dsl.errors import (
    NetcError,
    NetcLimitError,
    NetcNameError,
    NetcSyntaxError,
    Span,
    remember_source,
)
from netc.dsl.parser_cache import cached_lark

# Deepest nesting of the syntax tree accepted. Later stages walk expressions recursively,
# so a file of 10,000 nested parentheses must be a located error, not a RecursionError.
MAX_NESTING = 200
# Escapes allowed in string literals; anything else after a backslash is an error.
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}

# How terminals read in error messages.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "COMP_OP": "a comparison",
    "$END": "end of file",
}
# Tokens that carry no information once the tree has its shape.
_PUNCTUATION = {
    "IMPORT", "CONST", "BLOCK", "NETWORK", "INPUT", "OUTPUT", "RETURN", "FOR", "IN", "IF",
    "ELSE", "EQ", "COLON", "COMMA", "SEMI", "LPAR", "RPAR", "LSQB", "RSQB", "LBRACE",
    "RBRACE", "ARROW", "PARAM", "DOT",
}  # fmt: skip


@functools.cache
def _keywords() -> frozenset[str]:
    """Words the grammar reserves (`for`, `in`, `true`, ...): never valid as names."""
    return frozenset(t.pattern.value for t in _lark().terminals
                     if t.pattern.type == "str" and t.pattern.value.isidentifier())


@functools.cache
def _lark() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    # The basic lexer reads a keyword as a keyword everywhere: the contextual one would read
    # `else {` at the start of a statement, or `true = 3`, as a name and report a poorer error.
    return cached_lark(grammar, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=True)


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    for term in _lark().terminals:
        if term.name == name and term.pattern.type == "str":
            return f"'{term.pattern.value}'"
    return name.lower()


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type in ("NAME", "INT", "FLOAT", "STRING"):
        return f"{_TERMINAL_NAMES[token.type][2:] if token.type != 'INT' else 'integer'} '{token}'"
    return f"'{token}'"


def _token_span(file: str, token: Token) -> Span:
    line = token.line or 1
    col = token.column or 1
    end_col = token.end_column if token.end_column else col + max(len(token), 1)
    return Span(file, line, col, token.end_line or line, end_col)


def _previous_word(text: str, token: Token) -> str | None:
    """The identifier-like word just before `token`, if any (for keyword hints)."""
    start = token.start_pos if token.start_pos is not None else 0
    before = text[:start].rstrip()
    word = before[len(before.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")):]
    return word or None


_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_CLOSER_TERMINALS = {"(": "RPAR", "[": "RSQB", "{": "RBRACE"}


def _open_brackets(text: str) -> list[tuple[str, int, int]]:
    """The brackets left open at the end of `text`, innermost last, as (char, line, column);
    strings and comments are skipped."""
    stack: list[tuple[str, int, int]] = []
    line, col, i, n = 1, 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if ch == '"':
            i += 1
            col += 1
            while i < n and text[i] not in '"\n':
                step = 2 if text[i] == "\\" and i + 1 < n and text[i + 1] != "\n" else 1
                i += step
                col += step
            if i < n and text[i] == '"':
                i += 1
                col += 1
            continue
        if ch in _CLOSERS:
            stack.append((ch, line, col))
        elif stack and ch == _CLOSERS[stack[-1][0]]:
            stack.pop()
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    return stack


def _unclosed_hint(text: str, expected: set[str], line: int | None = None) -> list[str]:
    """'the ( at line 3, column 9 is never closed' when the innermost open bracket's closer
    is expected (and, for a token, the bracket was opened on an earlier line)."""
    stack = _open_brackets(text)
    if not stack:
        return []
    char, at_line, at_col = stack[-1]
    if _CLOSER_TERMINALS[char] not in expected or (line is not None and at_line >= line):
        return []
    return [f"the '{char}' at line {at_line}, column {at_col} is never closed"]


def _eof_hints(text: str, expected: set[str]) -> list[str]:
    hints = _unclosed_hint(text, expected)
    if not hints and "RBRACE" in expected:
        hints = ["a '{' may be missing its '}'"]
    return hints


def _describe_char(char: str) -> str:
    if char.isprintable() and not char.isspace():
        return f"'{char}'"
    return f"U+{ord(char):04X}" + (f" ('{char}')" if char.isprintable() else "")


def _hints(token: Token, expected: set[str], text: str = "") -> list[str]:
    hints = []
    if token.type == "EQ" and "NAME" in expected and _previous_word(text, token) in _keywords():
        hints.append(f"'{_previous_word(text, token)}' is a keyword and cannot be used as a name")
    if token.type == "EQ" and "COMP_OP" in expected:
        hints.append("'=' binds a name; compare with '=='")
    if token.type in ("NAME", "INT", "FLOAT") and "COMMA" in expected and "RPAR" in expected:
        hints.append("separate arguments with ','")
    start = token.start_pos if token.start_pos is not None else 0
    hints += _unclosed_hint(text[:start], expected, token.line)
    if token.type == "ARROW" or text[:start].rstrip().endswith("->"):
        hints.append("a pipeline step must be a layer or block, e.g. '-> dense(10)'")
    if token.type == "ELSE":
        hints.append("'else' follows the '}' of an if: if cond { ... } else { ... }")
    elif str(token) in _keywords() and "NAME" in expected:
        hints.append(f"'{token}' is a keyword and cannot be used as a name")
    return hints


def _syntax_error(err: UnexpectedInput, file: str, text: str) -> NetcSyntaxError:
    lines = text.split("\n")  # Lark counts lines by "\n" only (not "\f", "\v", U+2028, ...)
    if isinstance(err, UnexpectedCharacters):
        line, col = err.line, err.column
        row = lines[line - 1] if 0 < line <= len(lines) else ""
        char = row[col - 1] if 0 < col <= len(row) else text[err.pos_in_stream:err.pos_in_stream + 1] or "?"
        if char == '"':
            end_col = len(row.rstrip("\r")) + 1
            return NetcSyntaxError("unterminated string", Span(file, line, col, line, max(end_col, col + 1)),
                                   ["a string ends with '\"' on the line where it starts"])
        hint = "strings use double quotes" if char == "'" else None
        return NetcSyntaxError(
            f"unexpected character {_describe_char(char)}", Span(file, line, col, line, col + 1),
            [hint] if hint else []
        )
    if isinstance(err, UnexpectedEOF):
        line, col = len(lines), len(lines[-1]) + 1
        expected = ", ".join(sorted({_describe_terminal(t) for t in err.expected})[:8])
        return NetcSyntaxError(
            f"unexpected end of file; expected {expected}", Span(file, line, col, line, col + 1),
            _eof_hints(text, set(err.expected)),
        )
    assert isinstance(err, UnexpectedToken)
    token = err.token
    expected_names = set(err.expected)
    expected = sorted({_describe_terminal(t) for t in expected_names})
    shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
    if token.type == "$END":
        # Lark's end token borrows the position of the last real token: point just after it.
        line, col = (token.end_line, token.end_column) if token.end_line else (1, 1)
        span = Span(file, line, col, line, col + 1)
        hints = _eof_hints(text, expected_names)
    else:
        span = _token_span(file, token)
        hints = _hints(token, expected_names, text)
    return NetcSyntaxError(f"unexpected {_describe_token(token)}; expected {shown}", span, hints)


def _span(file: str, meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(file, 1, 1, 1, 2)
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _clean(children) -> list:
    return [c for c in children if not (isinstance(c, Token) and c.type in _PUNCTUATION)]


def _unescape(token: Token, file: str) -> str:
    """The text of a string literal: `\\\\ \\" \\n \\t \\r` are its only escapes."""
    body = str(token)[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1] if i + 1 < len(body) else ""
        if esc not in _ESCAPES:
            col = (token.column or 1) + 1 + i
            line = token.line or 1
            raise NetcSyntaxError(f"unknown escape '\\{esc}' in a string", Span(file, line, col, line, col + 2),
                                  ["escapes are \\\\ \\\" \\n \\t \\r; write paths with '/'"])
        out.append(_ESCAPES[esc])
        i += 2
    return "".join(out)


def _check_nesting(tree: Tree, file: str) -> None:
    """Refuse syntax trees nested deeper than `MAX_NESTING` (iteratively: no recursion)."""
    stack: list[tuple[Tree, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise NetcLimitError(f"expression nests deeper than {MAX_NESTING} levels", _span(file, node.meta),
                                 ["split it into named steps: h1 = ...; h2 = h1 -> ..."])
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """Lark tree -> `netc.dsl.ast`. Every method receives `meta` for the node's span."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _s(self, meta) -> Span:
        return _span(self.file, meta)

    # definitions
    def start(self, meta, children):
        return tuple(c for c in children if not (isinstance(c, Token)))

    def import_stmt(self, meta, children):
        (path,) = _clean(children)
        return ast.Import(_unescape(path, self.file), self._s(meta))

    def const_def(self, meta, children):
        name, value = _clean(children)
        return ast.Const(str(name), value, self._s(meta))

    def param_list(self, meta, children):
        params = tuple(c for c in _clean(children) if c is not None)
        seen: dict[str, Span] = {}
        for p in params:
            if p.name in seen:
                raise NetcNameError(f"parameter '{p.name}' is declared twice", p.span,
                                    [f"the first declaration is at {seen[p.name]}"])
            seen[p.name] = p.span
        return params

    def param(self, meta, children):
        name, _, type_, _, default = children
        type_name = ast.Name(str(type_), _token_span(self.file, type_)) if type_ else None
        return ast.Param(str(name), type_name, default, self._s(meta))

    def body(self, meta, children):
        return tuple(c for c in _clean(children) if not isinstance(c, Token))

    def block_def(self, meta, children):
        _, name, _, params, _, body = children
        return ast.BlockDef(str(name), params or (), body, self._s(meta))

    def network_def(self, meta, children):
        _, name, _, params, _, body = children
        return ast.NetworkDef(str(name), params or (), body, self._s(meta))

    # statements
    def input_stmt(self, meta, children):
        name, dtype, *dims = _clean(children)
        return ast.Input(str(name), ast.Name(str(dtype), _token_span(self.file, dtype)),
                         tuple(d for d in dims if d is not None), self._s(meta))

    def output_stmt(self, meta, children):
        _, name, _, value = children
        return ast.Output(str(name), value, self._s(meta))

    def param_stmt(self, meta, children):
        name, dtype, *rest = _clean(children)
        # the dims, then the initialiser (None placeholders for what is absent)
        init = rest.pop() if rest else None
        return ast.ParamDecl(str(name), ast.Name(str(dtype), _token_span(self.file, dtype)),
                             tuple(d for d in rest if d is not None), init, self._s(meta))

    def _target(self, item):
        if isinstance(item, Token):
            return ast.Name(str(item), _token_span(self.file, item))
        return item

    def target_tuple(self, meta, children):
        return tuple(self._target(c) for c in _clean(children))

    def assign(self, meta, children):
        *targets, value = _clean(children)
        return ast.Assign(tuple(self._target(t) for t in targets), value, self._s(meta))

    def for_stmt(self, meta, children):
        *targets, iterable, body = _clean(children)
        return ast.For(tuple(self._target(t) for t in targets), iterable, body, self._s(meta))

    def if_stmt(self, meta, children):
        _, cond, then, _, orelse = children
        if isinstance(orelse, ast.If):
            orelse = (orelse,)
        return ast.If(cond, then, orelse or (), self._s(meta))

    def return_stmt(self, meta, children):
        return ast.Return(tuple(_clean(children)), self._s(meta))

    # expressions
    def name(self, meta, children):
        return ast.Name(str(children[0]), self._s(meta))

    def int_lit(self, meta, children):
        try:
            value = int(children[0])
        except ValueError:  # Python refuses to convert more than 4300 digits
            raise NetcLimitError(f"integer literal of {len(children[0])} digits is too long", self._s(meta)) from None
        return ast.Literal(value, self._s(meta))

    def float_lit(self, meta, children):
        value = float(children[0])
        if math.isinf(value):
            text = str(children[0]) if len(children[0]) <= 24 else children[0][:20] + "..."
            raise NetcSyntaxError(f"number {text} is too large for a float (the largest is about 1.8e308)",
                                  self._s(meta))
        return ast.Literal(value, self._s(meta))

    def str_lit(self, meta, children):
        return ast.Literal(_unescape(children[0], self.file), self._s(meta))

    def true_lit(self, meta, children):
        return ast.Literal(True, self._s(meta))

    def false_lit(self, meta, children):
        return ast.Literal(False, self._s(meta))

    def none_lit(self, meta, children):
        return ast.Literal(None, self._s(meta))

    def paren(self, meta, children):
        return children[1]

    def tuple_lit(self, meta, children):
        return ast.TupleExpr(tuple(c for c in _clean(children) if c is not None), self._s(meta))

    def list_lit(self, meta, children):
        return ast.ListExpr(tuple(c for c in _clean(children) if c is not None), self._s(meta))

    def binop(self, meta, children):
        left, op, right = children
        return ast.BinOp(str(op), left, right, self._s(meta))

    def unop(self, meta, children):
        op, operand = children
        return ast.UnaryOp(str(op), operand, self._s(meta))

    def bool_not(self, meta, children):
        return ast.UnaryOp("not", children[-1], self._s(meta))

    def bool_and(self, meta, children):
        return ast.BoolOp("and", children[0], children[-1], self._s(meta))

    def bool_or(self, meta, children):
        return ast.BoolOp("or", children[0], children[-1], self._s(meta))

    def compare(self, meta, children):
        left, op, right = children
        return ast.Compare(str(op), left, right, self._s(meta))

    def kwarg(self, meta, children):
        name, value = _clean(children)
        return ast.Keyword(str(name), value, self._s(meta))

    def args(self, meta, children):
        return tuple(c for c in _clean(children) if c is not None)

    def call(self, meta, children):
        func, args = _clean(children)
        args = args or ()
        positional = tuple(a for a in args if not isinstance(a, ast.Keyword))
        keywords = tuple(a for a in args if isinstance(a, ast.Keyword))
        return ast.Call(func, positional, keywords, self._s(meta))

    def pipe(self, meta, children):
        value, target = _clean(children)
        if isinstance(target, ast.Call) and not target.piped:
            return ast.Call(target.func, (value, *target.args), target.kwargs, target.span, True)
        return ast.Call(target, (value,), (), target.span, True)

    def slice(self, meta, children):
        # [start, ':', stop, ':', step] with None placeholders for what is absent
        start, _, stop, *rest = children
        step = rest[1] if len(rest) == 2 else None
        return ast.Slice(start, stop, step, self._s(meta))

    def index(self, meta, children):
        value, *items = _clean(children)
        return ast.Index(value, tuple(i for i in items if i is not None), self._s(meta))

    def attribute(self, meta, children):
        value, attr = _clean(children)
        return ast.Attribute(value, str(attr), self._s(meta))

    def if_expr(self, meta, children):
        cond, then, orelse = (c for c in _clean(children) if c is not None)
        return ast.IfExpr(cond, then, orelse, self._s(meta))


def parse_source(text: str, file: str = "<string>") -> ast.Module:
    """Parse netc source text. Raises `NetcSyntaxError` with a located message."""
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark, as some editors write
        text = text[1:]
    remember_source(file, text)
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, file, text) from None
    _check_nesting(tree, file)
    try:
        items = _ToAst(file).transform(tree)
    except VisitError as err:  # a transformer method rejected the tree
        if isinstance(err.orig_exc, NetcError):
            raise err.orig_exc from None
        raise
    return ast.Module(file, items)


def parse_file(path: str | Path) -> ast.Module:
    """Read and parse a `.net` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NetcError(f"no such file: {path}") from None
    except UnicodeDecodeError as err:
        raise NetcSyntaxError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise NetcError(f"cannot read {path}: {err.strerror}") from None
    except ValueError as err:  # a NUL byte in the path
        raise NetcError(f"cannot read {path!r}: {err}") from None
    return parse_source(text, str(path))
