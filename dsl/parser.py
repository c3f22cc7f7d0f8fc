"""Parse `.net` text into the AST, turning Lark's errors into located `NetcSyntaxError`s."""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Transformer, UnexpectedInput, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

from netc.dsl import ast
from netc.dsl.errors import NetcError, NetcSyntaxError, Span

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
    "RBRACE", "ARROW",
}  # fmt: skip


@functools.cache
def _lark() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


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


def _hints(token: Token, expected: set[str]) -> list[str]:
    hints = []
    if token.type == "EQ" and "COMP_OP" in expected:
        hints.append("'=' binds a name; compare with '=='")
    if token.type in ("NAME", "INT", "FLOAT") and "COMMA" in expected and "RPAR" in expected:
        hints.append("separate arguments with ','")
    if token.type == "ARROW":
        hints.append("a pipeline step must be a layer or block, e.g. '-> dense(10)'")
    if token.type in _PUNCTUATION and token.type not in ("LPAR", "RPAR") and token.lower() == str(token):
        if str(token).isalpha() and "NAME" in expected:
            hints.append(f"'{token}' is a keyword and cannot be used as a name")
    return hints


def _syntax_error(err: UnexpectedInput, file: str, text: str) -> NetcSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        line, col = err.line, err.column
        char = text.splitlines()[line - 1][col - 1] if line - 1 < len(text.splitlines()) else "?"
        hint = "strings use double quotes" if char == "'" else None
        return NetcSyntaxError(
            f"unexpected character '{char}'", Span(file, line, col, line, col + 1), [hint] if hint else []
        )
    if isinstance(err, UnexpectedEOF):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        expected = ", ".join(sorted({_describe_terminal(t) for t in err.expected})[:8])
        return NetcSyntaxError(
            f"unexpected end of file; expected {expected}", Span(file, line, col, line, col + 1),
            ["a '{' may be missing its '}'"] if "RBRACE" in err.expected else [],
        )
    assert isinstance(err, UnexpectedToken)
    token = err.token
    expected_names = set(err.expected)
    expected = sorted({_describe_terminal(t) for t in expected_names})
    shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
    if token.type == "$END":
        lines = text.splitlines() or [""]
        span = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
    else:
        span = _token_span(file, token)
    return NetcSyntaxError(f"unexpected {_describe_token(token)}; expected {shown}", span, _hints(token, expected_names))


def _span(file: str, meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(file, 1, 1, 1, 2)
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _clean(children) -> list:
    return [c for c in children if not (isinstance(c, Token) and c.type in _PUNCTUATION)]


def _unescape(token: str) -> str:
    body = token[1:-1]
    return body.encode("utf-8").decode("unicode_escape") if "\\" in body else body


@v_args(meta=True)
class _ToAst(Transformer):
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
        return ast.Import(_unescape(path), self._s(meta))

    def const_def(self, meta, children):
        name, value = _clean(children)
        return ast.Const(str(name), value, self._s(meta))

    def param_list(self, meta, children):
        return tuple(c for c in _clean(children) if c is not None)

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
        return ast.Literal(int(children[0]), self._s(meta))

    def float_lit(self, meta, children):
        return ast.Literal(float(children[0]), self._s(meta))

    def str_lit(self, meta, children):
        return ast.Literal(_unescape(children[0]), self._s(meta))

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

    def if_expr(self, meta, children):
        cond, then, orelse = (c for c in _clean(children) if c is not None)
        return ast.IfExpr(cond, then, orelse, self._s(meta))


def parse_source(text: str, file: str = "<string>") -> ast.Module:
    """Parse netc source text. Raises `NetcSyntaxError` with a located message."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, file, text) from None
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
    return parse_source(text, str(path))
