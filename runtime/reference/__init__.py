"""The NumPy reference interpreter: an independent second implementation of every op."""

from netc.runtime.reference import (  # noqa: F401  (importing registers the references)
    attention,
    conv,
    conv_transpose,
    embed,
    indexing,
    loops,
    lrn,
    math,
    norm,
    pool,
    random,
    recurrent,
    reduce,
    resize,
    sampling,
    select,
    shape,
)
from netc.runtime.reference.interpreter import bind_inputs, run_graph, run_region
from netc.runtime.reference.registry import REFERENCE, ref

__all__ = ["REFERENCE", "bind_inputs", "ref", "run_graph", "run_region"]
