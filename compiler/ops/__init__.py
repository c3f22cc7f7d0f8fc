"""The op registry, one module per family. Importing this package registers every op."""

from netc.compiler.ops import (  # noqa: F401  (importing registers the ops)
    activations,
    attention,
    conv,
    dense,
    elementwise,
    embed,
    kv_cache,
    loops,
    mha,
    norm,
    pool,
    recurrent,
    reduce,
    shape,
    tensor,
    transformer,
)
from netc.compiler.ops.registry import REGISTRY, Arg, Case, OpDef, register

__all__ = ["REGISTRY", "Arg", "Case", "OpDef", "register"]
