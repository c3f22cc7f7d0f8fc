"""netc: a compiler for declarative neural-network descriptions.

    import netc
    compiled = netc.compile_file("examples/mnist_mlp.net")
    compiled.save("mnist.onnx")
"""

__version__ = "0.1.0"

from netc.api import (  # noqa: E402
    CompileOptions,
    Compiled,
    build_graph,
    check_file,
    compile_file,
    compile_source,
    load,
    save_model,
)
from netc.dsl.errors import NetcError  # noqa: E402

__all__ = [
    "CompileOptions",
    "Compiled",
    "NetcError",
    "__version__",
    "build_graph",
    "check_file",
    "compile_file",
    "compile_source",
    "load",
    "save_model",
]
