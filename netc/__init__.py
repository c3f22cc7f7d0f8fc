"""netc: a compiler for declarative neural-network descriptions.

    import netc
    compiled = netc.compile_file("examples/mnist_mlp.net")
    compiled.save("mnist.onnx")
"""

__version__ = "0.1.0"

from netc.api import (
    Compiled,
    CompileOptions,
    bench,
    build_graph,
    check_file,
    compile_file,
    compile_source,
    load,
    open_model,
    run,
    save_model,
    verify_file,
)
from netc.dsl.errors import NetcError

__all__ = [
    "CompileOptions",
    "Compiled",
    "NetcError",
    "__version__",
    "bench",
    "build_graph",
    "check_file",
    "compile_file",
    "compile_source",
    "load",
    "open_model",
    "run",
    "save_model",
    "verify_file",
]
