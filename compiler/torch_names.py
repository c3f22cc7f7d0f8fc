"""PyTorch state dicts -> netc parameter values, by name.

`multihead_attention`, `embed`, `positional_encoding` (learned) and the biases of `dense`
keep PyTorch's names and layouts; two kinds of parameter differ:

    netc                       PyTorch
    <dense>.weight [in, out]   <Linear>.weight [out, in]      (transposed)
    <layernorm>.scale          <LayerNorm>.weight
    <rms_norm>.scale           <RMSNorm>.weight

Block instances are named differently (`encoder_layer0.` for nn.TransformerEncoder's
`layers.0.`), so the caller gives prefix pairs. No PyTorch import here: the state dict
arrives as NumPy arrays (`{k: v.numpy() for k, v in module.state_dict().items()}`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from netc.compiler.ir import Graph
from netc.dsl.errors import NetcWeightsError

_SCALE_OPS = ("layernorm", "rms_norm")


def _param_kinds(graph: Graph) -> dict[str, str]:
    """netc parameter name -> the kind of the op that reads it."""
    kinds: dict[str, str] = {}
    for op in graph.walk():
        for v in op.inputs:
            if v is not None and v.param is not None:
                kinds.setdefault(v.name, op.kind)
    return kinds


def torch_name(name: str, kind: str, prefixes: Mapping[str, str]) -> tuple[str, bool]:
    """The PyTorch name of netc parameter `name` (read by an op of `kind`), and whether its
    value is transposed."""
    for netc_prefix, torch_prefix in sorted(prefixes.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(netc_prefix):
            name = torch_prefix + name[len(netc_prefix):]
            break
    if kind in _SCALE_OPS and name.endswith(".scale"):
        return name[: -len("scale")] + "weight", False
    return name, kind == "dense" and name.endswith(".weight")


def import_torch_state_dict(graph: Graph, state: Mapping[str, np.ndarray],
                            prefixes: Mapping[str, str] | None = None, strict: bool = True) -> dict[str, np.ndarray]:
    """Values for every parameter of `graph` from a PyTorch state dict (NumPy arrays).

    `prefixes` maps netc name prefixes to PyTorch ones ({"encoder_layer0.": "layers.0."}).
    Missing tensors, and with `strict` unused ones, are a `NetcWeightsError`."""
    kinds = _param_kinds(graph)
    values: dict[str, np.ndarray] = {}
    used: set[str] = set()
    missing: list[str] = []
    for p in graph.params:
        name, transpose = torch_name(p.name, kinds.get(p.name, ""), prefixes or {})
        if name not in state:
            missing.append(f"{p.name} (PyTorch {name})")
            continue
        array = np.asarray(state[name])
        values[p.name] = np.ascontiguousarray(array.T if transpose else array)
        used.add(name)
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    extra = sorted(set(state) - used)
    if strict and extra:
        problems.append("unused " + ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""))
    if problems:
        raise NetcWeightsError(f"PyTorch state dict does not match network '{graph.name}': " + "; ".join(problems))
    return values
