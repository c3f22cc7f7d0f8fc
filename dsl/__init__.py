"""The netc language front end: grammar, parser and AST. Knows nothing about tensors."""

from netc.dsl.errors import NetcError, Span
from netc.dsl.parser import parse_file, parse_source

__all__ = ["NetcError", "Span", "parse_file", "parse_source"]
