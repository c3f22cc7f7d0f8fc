"""`netc view`: the compiled model in Netron, served on 127.0.0.1.

A `.net` file is compiled first (into a temporary folder, removed on exit). Lowering names
the first ONNX node of each op after the netc layer that made it (`bottleneck3.conv2d1`;
further nodes `bottleneck3.conv2d1_Relu_`) and puts `layer (kind) at file:line:col` in
every node's doc string, which Netron shows as the node's description: a node leads back
to its `.net` line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from netc.dsl.errors import NetcInputError

HOST = "127.0.0.1"


def model_file(args: argparse.Namespace, folder: Path) -> Path:
    """The .onnx file to show: the given model, or the .net file compiled into `folder`."""
    from netc import api

    source = Path(args.model)
    if not source.is_file():
        raise NetcInputError(f"file not found: {args.model}")
    if source.suffix != ".net":
        if args.network or args.settings:
            raise NetcInputError(f"--network and --set apply to .net files; {args.model} is compiled already")
        return source
    options = api.CompileOptions(network=args.network, settings=dict(args.settings),
                                 allow_import_root=args.allow_import_root)
    compiled = api.compile_file(source, options)
    return api.save_model(compiled.model, folder / (source.stem + ".onnx"), source)


def serve(args: argparse.Namespace) -> int:
    from netc.tool_commands import require

    netron = require("netron", "view", "view")
    if not 0 <= args.port < 65536:
        raise NetcInputError(f"--port {args.port}: a port is 0..65535 (0: any free port)")
    with tempfile.TemporaryDirectory(prefix="netc-view-") as tmp:
        path = model_file(args, Path(tmp))
        logging.getLogger("netron").setLevel(logging.WARNING)
        try:
            host, port = netron.serve(str(path), None, address=(HOST, args.port), browse=not args.no_browser)
        except OSError as err:
            raise NetcInputError(f"cannot serve on {HOST}:{args.port}: {err.strerror or err}", None,
                                 ["choose another port with --port (0 picks a free one)"]) from None
        print(f"serving {path.name} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
        try:
            netron.wait()
        except KeyboardInterrupt:
            pass
        finally:
            netron.stop((host, port))
    print("stopped", file=sys.stderr)
    return 0
