"""Completion from the text before the cursor, which is usually half-typed and does not
parse: op and block names with signature snippets, the keyword arguments of the call being
written, option words (`pad=same`), activations, initialisers and dtypes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from netc.compiler.elaborate import builtins, signature_text
from netc.compiler.ir import DType
from netc.compiler.ops import REGISTRY
from netc.compiler.ops.registry import REQUIRED, Arg
from netc.compiler.values import INIT_SCHEMES, Builtin, Intrinsic
from netc.dsl import ast
from netc.lsp.analysis import Analysis

KEYWORDS = ("import", "const", "block", "network", "input", "output", "return", "for", "in", "if", "else",
            "and", "or", "not", "true", "false", "none")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # function | class | keyword | variable | value | constant | property | type
    detail: str = ""
    doc: str = ""
    snippet: str = ""  # insert text with ${1:...} placeholders; empty: insert the label


def complete(analysis: Analysis | None, text: str, line: int, col: int) -> list[Item]:
    """Completions at the 1-based position of `text` (the document as it is now)."""
    lines = text.split("\n")
    before = lines[line - 1][:col - 1] if 0 < line <= len(lines) else ""
    code = _strip([*lines[:line - 1], before])
    word = _IDENT.search(code)
    head = code[:len(code) - len(word.group())] if word else code
    if re.search(r"\binput\s+[A-Za-z_]\w*\s*:\s*$", head):
        return dtype_items()
    call = _open_call(head)
    if call is not None:
        fname, given, keyword = call
        args = _signature(fname, analysis)
        if keyword is not None:
            arg = next((a for a in args or () if a.name == keyword), None)
            return option_items(arg) if arg is not None else []
        items = [Item(f"{a.name}=", "property", a.kind, a.doc, f"{a.name}=$0") for a in args or ()
                 if a.kind not in ("tensor", "kwargs") and not a.variadic and a.name not in given]
        return items + name_items(analysis, piped=False)
    return name_items(analysis, piped=head.rstrip().endswith("->")) + \
        [Item(k, "keyword") for k in KEYWORDS]


def _strip(lines: list[str]) -> str:
    """The text with comments and string contents blanked (so their brackets do not count)."""
    out = []
    for raw in lines:
        line = re.sub(r'"(?:[^"\\]|\\.)*"?', lambda m: '"' + " " * (len(m.group()) - 2) + '"', raw)
        out.append(line.split("#", 1)[0])
    return "\n".join(out)


def _open_call(code: str) -> tuple[str, set[str], str | None] | None:
    """For text ending inside `f(a, k=v, ` or `f(a, k=`: f, the keywords given, and the
    keyword whose value is being written (None when writing a new argument)."""
    depth = 0
    for i in range(len(code) - 1, -1, -1):
        ch = code[i]
        if ch in ")]":
            depth += 1
        elif ch in "[":
            if depth == 0:
                return None  # inside a list or an index
            depth -= 1
        elif ch == "(":
            if depth > 0:
                depth -= 1
                continue
            name = _IDENT.search(code[:i].rstrip())
            if not name:
                return None
            inside = code[i + 1:]
            given = set(re.findall(r"([A-Za-z_]\w*)\s*=(?!=)", inside))
            keyword = re.search(r"(?:^|[,(\s])([A-Za-z_]\w*)\s*=\s*$", inside)
            return name.group(), given, keyword.group(1) if keyword else None
        elif ch in "{}":
            return None
    return None


def _signature(fname: str, analysis: Analysis | None) -> tuple[Arg, ...] | None:
    value = builtins().get(fname)
    if isinstance(value, Builtin):
        return value.opdef.signature
    if isinstance(value, Intrinsic):
        return value.signature
    block = _blocks(analysis).get(fname)
    if block is not None:
        return _block_signature(block)
    return None


def _block_signature(block: ast.BlockDef) -> tuple[Arg, ...]:
    return tuple(Arg(p.name, p.type.id if p.type else "any", REQUIRED if p.default is None else "...")
                 for p in block.params)


def _blocks(analysis: Analysis | None) -> dict[str, ast.BlockDef]:
    """Blocks of the file and its imports (from the last version that parsed)."""
    if analysis is None:
        return {}
    out: dict[str, ast.BlockDef] = {}
    if analysis.program is not None:
        for name, info in analysis.program.root.visible.items():
            if name in info.blocks:
                out[name] = info.blocks[name]
    if analysis.module is not None:
        out.update({i.name: i for i in analysis.module.items if isinstance(i, ast.BlockDef)})
    return out


def option_items(arg: Arg) -> list[Item]:
    """Values for `arg=`: its named options, activations, initialisers, dtypes or booleans."""
    if arg.choices:
        return [Item(c, "value", f"{arg.name} option") for c in arg.choices]
    if arg.kind == "act":
        return [Item(n, "function", "activation", op.doc) for n, op in REGISTRY.ops.items()
                if op.activation and not op.internal] + [Item("none", "keyword")]
    if arg.kind == "init":
        return [Item(s, "function", "initialiser") for s in INIT_SCHEMES]
    if arg.kind == "dtype":
        return dtype_items()
    if arg.kind == "bool":
        return [Item("true", "keyword"), Item("false", "keyword")]
    return []


def dtype_items() -> list[Item]:
    return [Item(d.value, "type", "dtype") for d in DType if d is not DType.bf16]


def name_items(analysis: Analysis | None, piped: bool) -> list[Item]:
    """Ops, intrinsics, blocks, constants and bindings, calls with their required arguments as
    snippet placeholders (after `->`, the piped tensor is left out)."""
    items: list[Item] = []
    for name, value in builtins().items():
        if isinstance(value, Builtin):
            items.append(Item(name, "function", signature_text(name, value.opdef.signature), value.opdef.doc,
                              _snippet(name, value.opdef.signature, piped)))
        elif isinstance(value, Intrinsic):
            items.append(Item(name, "function", signature_text(name, value.signature), value.doc,
                              _snippet(name, value.signature, False)))
        elif isinstance(value, DType):
            items.append(Item(name, "type", "dtype"))
    for name, block in _blocks(analysis).items():
        signature = _block_signature(block)
        items.append(Item(name, "class", "block " + signature_text(name, signature), "",
                          _snippet(name, signature, piped)))
    if analysis is not None and analysis.symbols is not None:
        seen = {i.label for i in items}
        for d in analysis.symbols.definitions:
            if d.name not in seen and d.kind not in ("block", "network"):
                seen.add(d.name)
                items.append(Item(d.name, "constant" if d.kind == "const" else "variable", d.kind))
    return items


def _snippet(name: str, signature: tuple[Arg, ...], piped: bool) -> str:
    required = [a for a in signature if a.required]
    if piped and required and required[0].kind in ("tensor", "any"):
        required = required[1:]
    if piped and not required:
        return name
    holes = ", ".join(f"${{{i}:{a.name}}}" for i, a in enumerate(required, 1))
    return f"{name}({holes})$0"
