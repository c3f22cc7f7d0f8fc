"""The editor and picture commands of the CLI: `netc lsp`, `netc graph`, `netc view`.

Each needs an optional extra (pygls, graphviz, netron), imported inside its command so
that `netc` itself starts without them; a missing extra is a clear error naming it.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

from netc.dsl.errors import NetcInputError


def require(module: str, command: str, extra: str) -> ModuleType:
    """Import an optional dependency, or fail saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NetcInputError(f"netc {command} needs the '{extra}' extra: pip install 'netc[{extra}]'") from None


def register(sub: argparse._SubParsersAction, network_options, count) -> None:
    """Add the commands to the CLI's subparsers (`network_options` adds --network/--set/...)."""
    from netc.cli import port_number  # cli is loaded: it calls this

    p = sub.add_parser("lsp", help="language server for editors (over stdio)",
                       description="Run the netc language server on stdin/stdout: diagnostics as you type, "
                                   "shapes on hover, go to definition, references, completion, outline. "
                                   "Needs the 'lsp' extra. See docs/editors.md for editor set-up.")
    p.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default and only transport)")
    p.set_defaults(handler=cmd_lsp)

    p = sub.add_parser("graph", help="draw a network as a block-level diagram (svg, png or dot)",
                       description="Draw one network of FILE with Graphviz: block instances as clusters "
                                   "(opened down to --depth), edges labelled with shapes, each layer with "
                                   "its parameter count, recurrences as a loop over their step. Needs the "
                                   "'graph' extra; .svg and .png also need Graphviz's `dot` program.")
    p.add_argument("file", metavar="FILE", help="a .net file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.svg|OUT.png|OUT.dot", help="the picture to write")
    p.add_argument("--depth", type=count, default=1, metavar="K",
                   help="block nesting levels to open as clusters (default 1; 0 draws each top-level block "
                        "instance as one node)")
    network_options(p)
    p.set_defaults(handler=cmd_graph)

    p = sub.add_parser("view", help="open the compiled model in Netron",
                       description="Compile FILE (or take a .onnx MODEL) and serve it with Netron on "
                                   "127.0.0.1. Nodes are named after netc's layers and carry their .net "
                                   "source location (file:line:col). Needs the 'view' extra.")
    p.add_argument("model", metavar="FILE|MODEL", help="a .net file or a .onnx model")
    p.add_argument("--port", type=port_number, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.add_argument("--no-browser", action="store_true", help="only serve; do not open a browser")
    network_options(p)
    p.set_defaults(handler=cmd_view)


def cmd_lsp(args: argparse.Namespace) -> int:
    require("pygls", "lsp", "lsp")
    from netc.lsp.server import main

    main()
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from netc.graph import write_graph

    out = write_graph(args)
    print(f"wrote {out}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from netc.view import serve

    return serve(args)
