"""IR -> ONNX. Each op's registry entry lowers itself through a `LowerContext`; this module
owns naming, initializers, symbolic-dim materialisation and the model wrapper."""

from __future__ import annotations

import hashlib
import os
from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from netc.compiler import dims as D
from netc.compiler.ir import Graph, Op, TensorType, Value
from netc.compiler.ops import REGISTRY

# Opset 21 by default: below 20 Gelu does not exist; at 22 GlobalLpPool has no onnxruntime
# 1.32 kernel, so global_l2pool lowers to ReduceL2 from 22 and every op runs up to 23
# (tools/opset_probe.py); nothing netc lowers by default is faster at 23.
DEFAULT_OPSET = 21
SUPPORTED_OPSETS = range(20, 24)
IR_VERSION_FOR_OPSET = {18: 8, 19: 9, 20: 9, 21: 10, 22: 10, 23: 11}


def value_info(name: str, t: TensorType) -> onnx.ValueInfoProto:
    dims: list[int | str | None] = [d if isinstance(d, int) else D.dim_str(d) for d in t.shape]
    return helper.make_tensor_value_info(name, t.dtype.onnx, dims)


class LowerContext:
    """What an op's `lower` sees: node and initializer factories, unique names, and the
    runtime value of symbolic dims."""

    def __init__(self, graph: Graph, opset: int, parent: LowerContext | None = None, seed: int = 0):
        self.graph = graph
        self.opset = opset
        self.seed = seed if parent is None else parent.seed  # the compile seed: random ops' seeds derive from it
        self.nodes: list[onnx.NodeProto] = []
        self._op: Op | None = None
        self._named: Op | None = None  # the op whose first node is already named
        self._node_names: set[str] = set()  # used by the root context only
        self._region_outputs: set[str] = set()
        self.root: LowerContext = self if parent is None else parent.root
        self._names: MutableMapping[int, str]
        if parent is not None:
            # A region's body: its own nodes; names, initializers and constants are shared with
            # the whole model (ONNX subgraphs read outer values by name, and names must be
            # unique across all scopes).
            self.initializers = parent.initializers
            self._names = ChainMap({}, parent._names)
            self._used = parent._used
            self._consts = parent._consts
            self._symbol_sources = parent._symbol_sources
            self._shape_of = parent._shape_of
            return
        self.initializers: list[TensorProto] = []
        self._names = {}
        self._used: set[str] = set()
        self._consts: dict[tuple, str] = {}
        self._symbol_sources: dict[str, tuple[str, int]] = {}
        self._shape_of: dict[str, str] = {}
        for v in graph.inputs:
            for axis, d in enumerate(v.type.shape):
                if isinstance(d, D.Sym) and len(d.terms) == 1 and d.terms[0][1] == 1 \
                        and len(d.terms[0][0]) == 1 and isinstance(d.terms[0][0][0], str):
                    self._symbol_sources.setdefault(d.terms[0][0][0], (v.name, axis))

    # ----------------------------------------------------------------- names
    def fresh(self, hint: str) -> str:
        base = "".join(c if c.isalnum() or c in "._" else "_" for c in hint) or "v"
        name, n = base, 1
        while name in self._used:
            name = f"{base}_{n}"
            n += 1
        self._used.add(name)
        return name

    def reserve(self, name: str) -> None:
        self._used.add(name)

    def name_of(self, value: Value) -> str:
        return self._names[id(value)]

    def bind(self, value: Value, name: str) -> None:
        self._names[id(value)] = name

    def has(self, value: Value) -> bool:
        return id(value) in self._names

    # ----------------------------------------------------------------- nodes and constants
    def node(self, op_type: str, inputs: Sequence[str], n_out: int = 1, outputs: Sequence[str] | None = None,
             domain: str = "", **attrs: Any) -> list[str]:
        hint = (self._op.label or self._op.kind) if self._op is not None else op_type.lower()
        outs = list(outputs) if outputs is not None else [self.fresh(f"{hint}/{op_type}") for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        # An op's first node takes the layer's own name (what a model viewer shows), the rest
        # `<layer>/<OpType>#`.
        first = self._op is not None and self._named is not self._op
        self._named = self._op
        name = self._node_name(hint if first else f"{hint}/{op_type}#")
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name,
                                           doc_string=self._source_note(), domain=domain or None, **attrs))
        return outs

    def _node_name(self, hint: str) -> str:
        """A node name unique in the model; nodes have a namespace apart from tensors."""
        used = self.root._node_names
        base = "".join(c if c.isalnum() or c in "._" else "_" for c in hint) or "node"
        name, n = base, 1
        while name in used:
            name = f"{base}_{n}"
            n += 1
        used.add(name)
        return name

    def _source_note(self) -> str | None:
        """`layer (kind) at file:line:col`, so a node seen in a model viewer leads back to the
        .net line that made it; the file relative to the compiled file's folder."""
        op = self._op
        if op is None or op.span is None:
            return None
        where = op.span.file
        if self.root.graph.source and not where.startswith("<"):
            where = os.path.relpath(os.path.abspath(where), os.path.dirname(os.path.abspath(self.root.graph.source)))
        return f"{op.label or op.kind} ({op.kind}) at {where}:{op.span.line}:{op.span.col}"

    def const(self, array: np.ndarray, hint: str = "const") -> str:
        array = np.asarray(array)
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 64 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        if key is not None:
            self._consts[key] = name
        return name

    def random_seed(self, stream: int) -> float:
        """The `seed` attribute of a random op: derived from the compile seed and the op's
        stream (a hash of its layer name), below 2**24 so that the float attribute is exact."""
        digest = hashlib.blake2b(f"{self.seed}:{stream}".encode(), digest_size=8).digest()
        return float(int.from_bytes(digest, "little") % 2**24)

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(values, dtype=np.int64), "ints")

    def dtype_of(self, op: Op, onnx_name: str) -> np.dtype:
        return op.inputs[0].type.dtype.numpy if op.inputs else np.dtype(np.float32)

    def shape_tensor(self, dims: Sequence[D.Dim]) -> str:
        """An int64 1-D tensor holding `dims`, computing symbolic dims from the graph inputs."""
        if self.root is not self:  # computed once, outside every loop body
            return self.root.shape_tensor(dims)
        if all(isinstance(d, int) for d in dims):
            return self.ints(list(dims))
        parts = [self.dim_tensor(d) for d in dims]
        return self.node("Concat", parts, axis=0)[0]

    def dim_tensor(self, d: D.Dim) -> str:
        """A 1-element int64 tensor holding dim `d` at run time."""
        if self.root is not self:
            return self.root.dim_tensor(d)
        if isinstance(d, int):
            return self.ints([d])
        total: str | None = None
        for mono, coeff in d.terms:
            term = self.ints([coeff]) if coeff != 1 or not mono else None
            for atom in mono:
                if isinstance(atom, str):
                    factor = self._symbol(atom)
                else:
                    factor = self.node("Div", [self.dim_tensor(atom.numerator), self.ints([atom.denominator])])[0]
                term = factor if term is None else self.node("Mul", [term, factor])[0]
            assert term is not None
            total = term if total is None else self.node("Add", [total, term])[0]
        assert total is not None
        return total

    def _symbol(self, name: str) -> str:
        if name not in self._symbol_sources:
            raise RuntimeError(f"symbolic dim {name} does not appear in any input shape")
        source, axis = self._symbol_sources[name]
        if source not in self._shape_of:
            self._shape_of[source] = self.node("Shape", [source])[0]
        key = f"{source}:{axis}"
        if key not in self._shape_of:
            self._shape_of[key] = self.node("Slice", [self._shape_of[source], self.ints([axis]),
                                                      self.ints([axis + 1])])[0]
        return self._shape_of[key]

    def define_symbol(self, name: str, source: str, axis: int) -> None:
        """Symbolic dim `name` is the size of `axis` of ONNX value `source` (a dim that an op
        creates, such as the length of a generated sequence)."""
        if self.root is self:
            self._symbol_sources.setdefault(name, (source, axis))

    # ----------------------------------------------------------------- regions
    def child(self) -> LowerContext:
        """A context that lowers a region into the body of a `Scan` or `Loop`."""
        return LowerContext(self.graph, self.opset, parent=self)

    def region_input(self, value: Value | None, hint: str, t: TensorType | None = None) -> onnx.ValueInfoProto:
        """Declare a body input; `value` (a region input) is bound to it when given."""
        name = self.fresh(hint)
        if value is not None:
            self.bind(value, name)
        t = t if t is not None else value.type if value is not None else None
        if t is None:
            raise ValueError("a body input needs a type")
        return value_info(name, t)

    def region_output(self, name: str, t: TensorType) -> onnx.ValueInfoProto:
        """Declare ONNX value `name` a body output. A body output must be computed by the
        body and listed once, so a pass-through (an input, an outer value, a repeat) gets an
        Identity."""
        produced = {o for node in self.nodes for o in node.output}
        if name not in produced or name in self._region_outputs:
            name = self.node("Identity", [name])[0]
        self._region_outputs.add(name)
        return value_info(name, t)

    def subgraph(self, name: str, inputs: Sequence[onnx.ValueInfoProto],
                 outputs: Sequence[onnx.ValueInfoProto]) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, self.fresh(name), list(inputs), list(outputs))

    # ----------------------------------------------------------------- driving
    def lower_ops(self, ops: Sequence[Op]) -> None:
        for op in ops:
            self._op = op
            inputs = ["" if v is None else self.name_of(v) for v in op.inputs]
            outs = REGISTRY[op.kind].lower(self, op, inputs)
            if len(outs) != len(op.outputs):
                raise RuntimeError(f"lowering of {op.kind} returned {len(outs)} outputs, expected {len(op.outputs)}")
            for value, name in zip(op.outputs, outs):
                self.bind(value, name)
        self._op = None


def lower_graph(graph: Graph, params: Mapping[str, np.ndarray], opset: int = DEFAULT_OPSET,
                metadata: Mapping[str, str] | None = None, expose_all: bool = False,
                value_names: dict[int, str] | None = None, seed: int = 0,
                include_params: bool = True) -> onnx.ModelProto:
    """Build the ONNX model of `graph` with `params` as initializers.

    `expose_all` also makes every intermediate value a graph output, so a verifier can
    compare onnxruntime with the reference op by op. `value_names`, when given, is filled
    with the ONNX name of every top-level value (graph inputs, parameters, op results) by
    `id(value)`. `seed` is the compile seed, from which random ops' seeds derive. Without
    `include_params` the parameters' initializers are left out (and `params` is not read):
    `netc.model_writer` streams them into the file.
    """
    ctx = LowerContext(graph, opset, seed=seed)
    for v in graph.inputs:
        ctx.reserve(v.name)
        ctx.bind(v, v.name)
    for name in graph.outputs:
        ctx.reserve(name)
    for p in graph.params:
        ctx.reserve(p.name)
        ctx.bind(graph.param_values[p.name], p.name)
    # Name each output's producing op result after the output, so no Identity is needed.
    renamed: dict[int, str] = {}
    for name, value in graph.outputs.items():
        if value.producer is not None and id(value) not in renamed:
            renamed[id(value)] = name
    ctx.lower_ops(graph.ops)
    produced = {o for node in ctx.nodes for o in node.output}
    sources = {v.name for v in graph.inputs} | {p.name for p in graph.params}
    out_names = {}
    for name, value in graph.outputs.items():
        internal = ctx.name_of(value)
        if name in sources:  # the elaborator refuses these; an ONNX graph names each value once
            raise RuntimeError(f"output '{name}' has the name of a graph input or parameter")
        if renamed.get(id(value)) == name and internal in produced:
            _rename(ctx, internal, name)
            produced = (produced - {internal}) | {name}
            for key, bound in list(ctx._names.items()):  # every value that lowered to that tensor
                if bound == internal:
                    ctx._names[key] = name
        else:  # an input, a parameter, a constant initializer or a repeat: a tensor of its own
            ctx.node("Identity", [internal], outputs=[name])
        out_names[name] = value
    outputs = [value_info(n, v.type) for n, v in out_names.items()]
    if expose_all:
        seen = set(graph.outputs) | {ctx.name_of(v) for v in graph.outputs.values()}
        for op in graph.ops:
            for v in op.outputs:
                n = ctx.name_of(v)
                if n not in seen and n in produced:
                    outputs.append(value_info(n, v.type))
                    seen.add(n)
    if value_names is not None:
        for v in [*graph.inputs, *graph.param_values.values(), *(o for op in graph.ops for o in op.outputs)]:
            if ctx.has(v):
                value_names[id(v)] = ctx.name_of(v)
    # Built in place: make_graph/make_model would copy every weight twice more.
    model = onnx.ModelProto()
    model.ir_version = IR_VERSION_FOR_OPSET.get(opset, 10)
    model.producer_name = "netc"
    model.opset_import.add(domain="", version=opset)
    for domain in sorted(_domains(ctx.nodes) - {""}):  # onnxruntime's contrib ops (com.microsoft)
        model.opset_import.add(domain=domain, version=1)
    onnx_graph = model.graph
    onnx_graph.name = graph.name
    onnx_graph.node.extend(ctx.nodes)
    onnx_graph.input.extend(value_info(v.name, v.type) for v in graph.inputs)
    onnx_graph.output.extend(outputs)
    for p in graph.params if include_params else ():
        add_initializer(onnx_graph, p.name, params[p.name])
    onnx_graph.initializer.extend(ctx.initializers)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _domains(nodes: Sequence[onnx.NodeProto]) -> set[str]:
    """The operator domains used by `nodes` and the bodies they own."""
    found: set[str] = set()
    for node in nodes:
        found.add(node.domain or "")
        for attr in node.attribute:
            for body in [attr.g] if attr.HasField("g") else list(attr.graphs):
                found |= _domains(body.node)
    return found


def add_initializer(onnx_graph: onnx.GraphProto, name: str, array: np.ndarray) -> None:
    """Append `array` as a raw little-endian initializer, copying its bytes once."""
    array = np.asarray(array)
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    tensor = onnx_graph.initializer.add()
    tensor.name = name
    tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor.dims.extend(array.shape)
    tensor.raw_data = array.tobytes()


def _rename(ctx: LowerContext, old: str, new: str) -> None:
    _rename_in(ctx.nodes, old, new)


def _rename_in(nodes: Sequence[onnx.NodeProto], old: str, new: str) -> None:
    """Rename tensor `old` to `new` in `nodes` and the bodies (Scan, Loop) that read it."""
    for node in nodes:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            for body in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_in(body.node, old, new)
