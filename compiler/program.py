"""Loading a program: a root `.net` file and everything it imports.

Imports resolve relative to the importing file, must name `.net` files, and may not leave
the import root (the root file's folder, unless `allow_import_root` widens it). Cycles are
reported with the chain that forms them. `std/NAME.net` names a file of the standard
library shipped with netc (`compiler/std/`), wherever the importing file is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from netc.compiler.limits import DEFAULT_LIMITS, Limits
from netc.compiler.work import WorkBudget
from netc.dsl import ast
from netc.dsl.errors import NetcError, NetcImportError, NetcLimitError, NetcNameError, Span
from netc.dsl.parser import parse_file, parse_source


@dataclass
class ModuleInfo:
    """A parsed file and the definitions it makes visible (its own and its imports')."""

    module: ast.Module
    consts: dict[str, ast.Const] = field(default_factory=dict)
    blocks: dict[str, ast.BlockDef] = field(default_factory=dict)
    networks: dict[str, ast.NetworkDef] = field(default_factory=dict)
    imports: list[ModuleInfo] = field(default_factory=list)
    # name -> the module that defines it, for everything visible in this module
    visible: dict[str, ModuleInfo] = field(default_factory=dict)


@dataclass
class Program:
    root: ModuleInfo
    modules: dict[str, ModuleInfo]
    work: WorkBudget | None = None  # compile-time work of every network of the file together

    @property
    def networks(self) -> dict[str, ast.NetworkDef]:
        return self.root.networks


def _resolve_path(path: Path, span: Span | None, what: str) -> Path:
    """`path.resolve()`, with the file system's refusals (a symlink loop, a name too long, a
    NUL byte) as located errors."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        cls = NetcImportError if span is not None else NetcError
        raise cls(f"cannot resolve {what} {_shorten(str(path))}: {reason}", span) from None


def _shorten(text: str, limit: int = 120) -> str:
    """A path as it reads in a message: control characters escaped, at most `limit` long."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Loader:
    def __init__(self, import_root: Path, limits: Limits, parse: Callable[[Path], ast.Module] = parse_file):
        self.import_root = _resolve_path(import_root, None, "the import root")
        self.limits = limits
        self.parse = parse
        self.modules: dict[str, ModuleInfo] = {}
        self.stack: list[str] = []

    def load(self, path: Path, text: str | None, span: Span | None) -> ModuleInfo:
        key = str(_resolve_path(path, span, "import" if span else "file")) if text is None else str(path)
        if key in self.stack:
            chain = " -> ".join(Path(p).name for p in [*self.stack[self.stack.index(key):], key])
            raise NetcImportError(f"import cycle: {chain}", span)
        if key in self.modules:
            return self.modules[key]
        if len(self.stack) >= self.limits.max_import_depth:
            raise NetcImportError(f"imports nest deeper than {self.limits.max_import_depth} files", span)
        self.stack.append(key)
        try:
            self._check_size(path, text, span)
            module = parse_source(text, str(path)) if text is not None else self.parse(path)
            info = ModuleInfo(module)
            for item in module.items:
                if isinstance(item, ast.Import):
                    info.imports.append(self.load(self._resolve(path, item), None, item.span))
            self._collect(info)
        finally:
            self.stack.pop()
        self.modules[key] = info
        return info

    def _check_size(self, path: Path, text: str | None, span: Span | None) -> None:
        """Refuse a source file over the limit before reading it (a 2 GB file is a mistake)."""
        limit = self.limits.max_source_bytes
        try:
            size = len(text.encode("utf-8", "surrogatepass")) if text is not None else path.stat().st_size
        except (OSError, ValueError):
            return  # the read reports what is wrong with the file
        if size > limit:
            raise NetcLimitError(f"source file {_shorten(str(path))} is {size:,} bytes, over the limit of "
                                 f"{limit:,} bytes for one .net file (max_source_bytes)", span,
                                 ["split it into files that import each other"])

    def _resolve(self, importer: Path, item: ast.Import) -> Path:
        raw = item.path
        if not raw.endswith(".net"):
            raise NetcImportError(f"imports name .net files; got \"{raw}\"", item.span)
        if raw.startswith(STD_PREFIX):  # the standard library shipped with netc
            return _std_path(raw, item)
        if Path(raw).is_absolute() or raw.startswith("~"):
            raise NetcImportError(f"absolute import \"{raw}\" is not allowed", item.span,
                                  ["imports are relative to the importing file"])
        target = _resolve_path(importer.parent / raw, item.span, "import")
        if not target.is_relative_to(self.import_root):
            raise NetcImportError(
                f"import \"{_shorten(raw)}\" leaves the import root {self.import_root}", item.span,
                ["pass --allow-import-root DIR to permit imports below DIR"])
        try:
            found = target.is_file()
        except (OSError, ValueError) as err:
            raise NetcImportError(f"cannot read import \"{_shorten(raw)}\": {getattr(err, 'strerror', err)}",
                                  item.span) from None
        if not found:
            raise NetcImportError(f"cannot find imported file \"{_shorten(raw)}\" (looked for "
                                  f"{_shorten(str(target))})", item.span)
        return target

    def _collect(self, info: ModuleInfo) -> None:
        for imported in info.imports:  # imports are transitive; later ones shadow earlier
            info.visible.update(imported.visible)
        seen: dict[str, Span] = {}
        for item in info.module.items:
            if isinstance(item, ast.Import):
                continue
            if item.name in seen:
                raise NetcNameError(f"'{item.name}' is defined twice in this file", item.span,
                                    [f"the first definition is at {seen[item.name]}"])
            seen[item.name] = item.span
            table = {ast.Const: info.consts, ast.BlockDef: info.blocks, ast.NetworkDef: info.networks}[type(item)]
            table[item.name] = item
            info.visible[item.name] = info


STD_PREFIX = "std/"
STD_DIR = Path(__file__).resolve().parent / "std"


def _std_path(raw: str, item: ast.Import) -> Path:
    """`std/NAME.net`: a file of netc's standard library (compiler/std/), whatever the
    importing file's folder; the import root does not confine it."""
    target = (STD_DIR / raw[len(STD_PREFIX):]).resolve()
    if not target.is_relative_to(STD_DIR) or not target.is_file():
        shipped = sorted(f"std/{p.name}" for p in STD_DIR.glob("*.net"))
        raise NetcImportError(f"no standard library file \"{_shorten(raw)}\"", item.span,
                              ["the standard library has: " + ", ".join(shipped)])
    return target


def load_program(path: str | Path, text: str | None = None, allow_import_root: str | Path | None = None,
                 limits: Limits = DEFAULT_LIMITS, parse: Callable[[Path], ast.Module] = parse_file) -> Program:
    """Parse `path` (or `text`, named `path`) and its imports; `parse` reads an imported file
    (an editor passes one that caches, and reads its open, unsaved buffers)."""
    path = Path(path)
    root_dir = Path(allow_import_root) if allow_import_root else path.parent
    if allow_import_root and not root_dir.is_dir():
        raise NetcImportError(f"--allow-import-root {_shorten(str(allow_import_root))}: "
                              f"{'no such folder' if not root_dir.exists() else 'not a folder'}", None)
    loader = _Loader(root_dir, limits, parse)
    root = loader.load(path, text, None)
    return Program(root, loader.modules, WorkBudget(limits))
