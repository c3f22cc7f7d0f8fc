"""The op registry, one module per family. Importing this package registers every op."""

from netc.compiler.ops import (  # noqa: F401  (importing registers the ops)
    activations,
    attention,
    conv,
    conv_transpose,
    dense,
    elementwise,
    embed,
    indexing,
    kv_cache,
    loops,
    lrn,
    mha,
    norm,
    pool,
    random,
    recurrent,
    reduce,
    resize,
    sampling,
    select,
    shape,
    tensor,
    transformer,
)
from netc.compiler.ops.registry import REGISTRY, Arg, Case, OpDef, register

__all__ = ["REGISTRY", "Arg", "Case", "OpDef", "register"]
