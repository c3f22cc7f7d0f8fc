"""The netc AST: frozen dataclasses, each carrying the `Span` it was parsed from."""

from __future__ import annotations

from dataclasses import dataclass

from netc.dsl.errors import Span

# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class Literal:
    """An int, float, string, bool or none literal."""

    value: int | float | str | bool | None
    span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * / // % @ **
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class UnaryOp:
    op: str  # - + not
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and | or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """`func(args...)`; a pipeline `a -> f(b)` is parsed into `f(a, b)` with `piped=True`."""

    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span
    piped: bool = False


@dataclass(frozen=True, slots=True)
class Slice:
    start: Expr | None
    stop: Expr | None
    step: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Index:
    value: Expr
    items: tuple[Expr | Slice, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Attribute:
    """`value.attr`: a parameter of a shared layer (`emb.weight`, `tower.dense0.weight`)."""

    value: Expr
    attr: str
    span: Span


@dataclass(frozen=True, slots=True)
class TupleExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class IfExpr:
    cond: Expr
    then: Expr
    orelse: Expr
    span: Span


Expr = (Name | Literal | BinOp | UnaryOp | Compare | BoolOp | Call | Index | Attribute | TupleExpr | ListExpr
        | IfExpr)

# ----------------------------------------------------------------------------- statements

# A binding target: a name, or a (possibly nested) tuple of targets.
Target = Name | tuple["Target", ...]


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    dtype: Name
    dims: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    value: Expr | None  # None: output an existing binding of the same name
    span: Span


@dataclass(frozen=True, slots=True)
class ParamDecl:
    """`param name: dtype[dims] = init`: a free learned tensor of the block or network."""

    name: str
    dtype: Name
    dims: tuple[Expr, ...]
    init: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Assign:
    targets: tuple[Target, ...]
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class For:
    targets: tuple[Target, ...]
    iterable: Expr
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class If:
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Return:
    values: tuple[Expr, ...]
    span: Span


Stmt = Input | Output | ParamDecl | Assign | For | If | Return

# ----------------------------------------------------------------------------- definitions


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Name | None
    default: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    span: Span


@dataclass(frozen=True, slots=True)
class Const:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class BlockDef:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class NetworkDef:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span


Definition = Import | Const | BlockDef | NetworkDef


@dataclass(frozen=True, slots=True)
class Module:
    path: str
    items: tuple[Definition, ...]
