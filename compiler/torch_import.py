"""PyTorch state dicts onto netc's parameter names (NumPy only: torch is never imported).

A state dict (read from a `.safetensors` file, never a pickle) is grouped into modules —
`layer1.0.conv1.weight` belongs to module `layer1.0.conv1` — and each module gets a kind
from its tensors (a conv weight has 3 to 5 axes, batch norm has running statistics, a
recurrent layer has `weight_ih_l0`, ...). netc's layers are the ops that own parameters,
in the order the network creates them. Each netc layer is paired with a module:

1. a rule of the rules file (`NETC_LAYER = TORCH_MODULE`), when one names the layer;
2. else the first unpaired module named like the layer (the last part of both names:
   `self_attn` for `dec.self_attn` and `layers.0.self_attn`), when its tensors fit: a
   creation order rebuilt from names cannot tell which of two such siblings came first;
3. else the next unpaired module in PyTorch's creation order, when its tensors fit;
4. else the only unpaired module anywhere whose tensors fit;
5. else, of several that fit, the first in creation order.

A safetensors file keeps no creation order (its names are sorted), so the order is
rebuilt from the names: numbered siblings by number (`conv2` before `conv10`,
`features.3` before `features.10`), and at one number a weight layer before its
normalisation (`conv1`, `bn1`, `layer1`). "Fits" means the converted tensors have exactly
the shapes the netc layer needs. Converters (one per netc layer kind) do the layout
changes: a dense weight is PyTorch's `[out, in]` transposed (a transposed convolution's
weight `[in, out/groups, k...]` is the same in both); batch norm's
`weight, bias, running_mean, running_var` are netc's `scale, bias, mean, var`; recurrent
layers reorder gate blocks and negate the GRU's update gate (see
`netc.compiler.ops.recurrent.import_torch_weights`). A free `param` declaration is a layer
of its own, named like the parameter, and takes the module's tensor of the same local name,
else its only tensor of the right shape (an `nn.Parameter`, or the bias of a projection whose
weight is tied). A PyTorch tensor left over that equals one already taken is reported as a
tied copy (a tied weight appears under both names in a state dict), not as unmatched. `multihead_attention`
takes nn.MultiheadAttention's tensors under the same names and layouts (its `out_proj` child
folded into it), `rms_norm` takes RMSNorm's `weight` as `scale`. A new layer kind plugs in
with `@converter("kind", "torch kind", ...)`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from netc.compiler.ir import Graph, Op, Param
from netc.compiler.ops.recurrent import import_torch_weights
from netc.dsl.errors import NetcWeightsError

IGNORED_SUFFIXES = ("num_batches_tracked",)  # batch-norm bookkeeping, no value to carry


# --------------------------------------------------------------------------- PyTorch side
@dataclass
class TorchModule:
    path: str  # `layer1.0.conv1`; "" for tensors at the top level
    tensors: dict[str, np.ndarray]  # local name (`weight`) -> array
    kind: str  # matrix | conv | batchnorm | norm | recurrent | attention | vector | other

    def name(self, local: str) -> str:
        return f"{self.path}.{local}" if self.path else local


def module_kind(tensors: Mapping[str, np.ndarray]) -> str:
    names = set(tensors)
    weight = tensors.get("weight")
    if "running_mean" in names or "running_var" in names:
        return "batchnorm"
    if any(n.startswith("weight_ih_l") for n in names):
        return "recurrent"
    if "in_proj_weight" in names or "q_proj_weight" in names:
        return "attention"
    if weight is None:
        return "other"
    if weight.ndim == 2:
        return "matrix"  # nn.Linear or nn.Embedding: told apart by the netc layer they fit
    if weight.ndim in (3, 4, 5):
        return "conv"
    if weight.ndim == 1:
        return "norm"  # LayerNorm, GroupNorm (affine), PReLU
    return "other"


def group_modules(state: Mapping[str, np.ndarray]) -> tuple[list[TorchModule], list[str]]:
    """Modules in (rebuilt) creation order, and the ignored tensor names."""
    by_path: dict[str, dict[str, np.ndarray]] = {}
    ignored = []
    for name, array in state.items():
        path, _, local = name.rpartition(".")
        if local in IGNORED_SUFFIXES:
            ignored.append(name)
            continue
        by_path.setdefault(path, {})[local] = np.asarray(array)
    _fold_out_projections(by_path)
    modules = [TorchModule(path, tensors, module_kind(tensors)) for path, tensors in by_path.items()]
    modules.sort(key=_creation_key)
    return modules, sorted(ignored)


def _fold_out_projections(by_path: dict[str, dict[str, np.ndarray]]) -> None:
    """nn.MultiheadAttention keeps its output projection in a child Linear (`out_proj`); netc's
    `multihead_attention` owns it (`out_proj.weight`), so the child joins its parent module."""
    for path in list(by_path):
        parent, _, leaf = path.rpartition(".")
        if leaf == "out_proj" and module_kind(by_path.get(parent, {})) == "attention":
            for local, array in by_path.pop(path).items():
                by_path[parent][f"out_proj.{local}"] = array


_RANK = {"matrix": 0, "conv": 0, "recurrent": 0, "attention": 0, "batchnorm": 1, "norm": 1}
_TRAILING_NUMBER = re.compile(r"(.*?)(\d+)$")


def _creation_key(module: TorchModule) -> tuple:
    parts = module.path.split(".") if module.path else []
    key = []
    for i, part in enumerate(parts):
        leaf = i == len(parts) - 1
        rank = _RANK.get(module.kind, 2) if leaf else 3  # a layer before its norm, both before a container
        match = _TRAILING_NUMBER.fullmatch(part)
        number = int(match.group(2)) if match else math.inf
        key.append((number, rank, match.group(1) if match else part))
    return tuple(key)


# --------------------------------------------------------------------------- netc side
@dataclass
class NetcLayer:
    label: str
    op: Op
    params: list[Param]

    @property
    def kind(self) -> str:
        return self.op.kind

    @property
    def free(self) -> bool:
        """A `param` declaration rather than a layer's own parameters."""
        return self.kind == "param"

    def local(self, param: Param) -> str:
        if param.name.startswith(self.label + "."):
            return param.name[len(self.label) + 1:]
        return param.name.rpartition(".")[2]  # a free parameter: its declared name


def netc_layers(graph: Graph) -> list[NetcLayer]:
    """The ops that own parameters, in creation order, each with its parameters; then each
    parameter no layer owns (a `param` declaration) as a layer of kind `param`."""
    by_name = {p.name: p for p in graph.params}
    order = {p.name: i for i, p in enumerate(graph.params)}
    layers: list[NetcLayer] = []
    taken: set[str] = set()
    for op in graph.walk():
        # A layer's own parameters are named under its label; an op that reads another
        # layer's parameter (`emb.weight`) or a free one (`x @ w`) does not own it.
        own = [v.param for v in op.inputs if v is not None and v.param is not None
               and v.param.name in by_name and v.param.name not in taken
               and (not op.label or v.param.name.startswith(op.label + "."))]
        if own:
            taken.update(p.name for p in own)
            own.sort(key=lambda p: order[p.name])
            layers.append(NetcLayer(op.label or own[0].name.rpartition(".")[0], op, own))
    users = {v.param.name: op for op in graph.walk() for v in op.inputs
             if v is not None and v.param is not None}
    for param in graph.params:
        if param.name not in taken and param.name in users:
            layers.append(NetcLayer(param.name, Op("param", [], [], {}, param.span, label=param.name), [param]))
    layers.sort(key=lambda layer: order[layer.params[0].name])
    return layers


# --------------------------------------------------------------------------- converters
Converter = Callable[[NetcLayer, TorchModule], dict[str, np.ndarray]]


@dataclass(frozen=True)
class ConverterEntry:
    torch_kinds: tuple[str, ...]
    convert: Converter


CONVERTERS: dict[str, ConverterEntry] = {}


def converter(netc_kind: str, *torch_kinds: str) -> Callable[[Converter], Converter]:
    """Register how a netc layer kind takes its values from a PyTorch module of one of
    `torch_kinds`. The function returns arrays by netc local name (`weight`, `bias`); it
    raises `Misfit` when the module does not hold what the layer needs."""

    def register(fn: Converter) -> Converter:
        CONVERTERS[netc_kind] = ConverterEntry(tuple(torch_kinds), fn)
        return fn

    return register


class Misfit(Exception):
    """A module that cannot give a layer its values (the reason is the message)."""


def _take(module: TorchModule, local: str) -> np.ndarray:
    if local not in module.tensors:
        raise Misfit(f"{module.name(local)} is missing")
    return module.tensors[local]


@converter("dense", "matrix")
def _dense(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    out = {"weight": _take(module, "weight").T}  # nn.Linear keeps [out, in]; netc [in, out]
    if "bias" in module.tensors:
        out["bias"] = module.tensors["bias"]
    return out


@converter("embed", "matrix")
def _embed(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    if "bias" in module.tensors:
        raise Misfit(f"{module.path} has a bias: a linear layer, not an embedding")
    return {"weight": _take(module, "weight")}


def _conv(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    return {k: module.tensors[k] for k in ("weight", "bias") if k in module.tensors}


for _kind in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d"):
    converter(_kind, "conv")(_conv)  # ConvTranspose keeps [in, out/groups, k...], as netc does


@converter("param", "matrix", "conv", "batchnorm", "norm", "recurrent", "attention", "other")
def _free_param(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    (param,) = layer.params
    local = layer.local(param)
    same_name = module.tensors.get(local)
    if same_name is not None and tuple(same_name.shape) == tuple(param.shape):
        return {local: same_name}
    fitting = [a for a in module.tensors.values() if tuple(a.shape) == tuple(param.shape)]
    if len(fitting) == 1:
        return {local: fitting[0]}
    shapes = ", ".join(f"{k} {list(a.shape)}" for k, a in module.tensors.items())
    raise Misfit(f"{module.path or '(top level)'} has no tensor '{local}' or single tensor of shape "
                 f"{list(param.shape)} for {param.name} ({shapes})")


@converter("batchnorm", "batchnorm")
def _batchnorm(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    out = {"mean": _take(module, "running_mean"), "var": _take(module, "running_var")}
    channels = out["mean"].shape[0]
    # affine=False: PyTorch keeps no scale or bias; netc's are then 1 and 0.
    out["scale"] = module.tensors.get("weight", np.ones(channels, out["mean"].dtype))
    out["bias"] = module.tensors.get("bias", np.zeros(channels, out["mean"].dtype))
    return out


@converter("layernorm", "norm")
def _layernorm(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    out = {"scale": _take(module, "weight")}
    if "bias" in module.tensors:
        out["bias"] = module.tensors["bias"]
    return out


@converter("rms_norm", "norm")
def _rms_norm(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    return {"scale": _take(module, "weight")}


@converter("multihead_attention", "attention")
def _multihead_attention(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    """netc's names and layouts are nn.MultiheadAttention's (`in_proj_weight` or
    `q/k/v_proj_weight`, `in_proj_bias`, `out_proj.weight` [out, in], `out_proj.bias`)."""
    return {layer.local(p): _take(module, layer.local(p)) for p in layer.params}


def _recurrent(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    attrs = layer.op.attrs
    if attrs.get("peephole") or attrs.get("coupled"):
        raise Misfit(f"netc layer {layer.label} has peepholes or a coupled gate, which PyTorch's "
                     f"{layer.kind.upper()} has not")
    if attrs.get("forget_bias"):
        raise Misfit(f"netc layer {layer.label} adds forget_bias={attrs['forget_bias']}, which PyTorch's LSTM has not")
    if layer.kind == "rnn" and attrs.get("act", "tanh") not in ("tanh", "relu"):
        raise Misfit(f"netc layer {layer.label} uses act={attrs['act']}; PyTorch's RNN computes only tanh or relu")
    if layer.kind == "gru" and attrs.get("reset", "before") != "after":
        raise Misfit(f"PyTorch's GRU applies the reset gate after the recurrent product: declare the netc layer "
                     f"{layer.label} with gru(..., reset=\"after\")")
    try:
        named = import_torch_weights(module.tensors, layer.kind, layer.label)
    except ValueError as err:
        raise Misfit(f"{module.path}: {err}") from None
    return {name[len(layer.label) + 1:]: value for name, value in named.items()}


for _kind in ("rnn", "lstm", "gru"):
    converter(_kind, "recurrent")(_recurrent)


# --------------------------------------------------------------------------- matching
@dataclass
class Pairing:
    layer: str
    module: str
    how: str  # rule | order | shape | first of several


@dataclass
class ImportResult:
    weights: dict[str, np.ndarray]
    pairings: list[Pairing] = field(default_factory=list)
    unmatched_torch: list[str] = field(default_factory=list)  # tensor names nothing took
    unfilled: list[str] = field(default_factory=list)  # netc layers no module fitted
    ignored: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # per unfilled layer: why the closest module did not fit
    cast: list[str] = field(default_factory=list)  # parameters converted to another dtype
    tied: dict[str, str] = field(default_factory=dict)  # left-over tensor -> the taken tensor it equals

    def report(self) -> str:
        lines = [f"paired {len(self.pairings)} layer(s):"]
        width = max((len(p.layer) for p in self.pairings), default=0)
        lines += [f"  {p.layer.ljust(width)}  <- {p.module or '(top level)'}  ({p.how})" for p in self.pairings]
        if self.cast:
            lines.append(f"cast to the network's dtype: {', '.join(self.cast)}")
        if self.ignored:
            lines.append(f"ignored (bookkeeping): {len(self.ignored)} tensor(s), e.g. {self.ignored[0]}")
        if self.tied:
            lines.append(f"tied copies, not needed ({len(self.tied)}): "
                         + ", ".join(f"{copy} (= {kept})" for copy, kept in self.tied.items()))
        if self.unmatched_torch:
            lines.append(f"unmatched PyTorch tensors ({len(self.unmatched_torch)}): "
                         + ", ".join(self.unmatched_torch))
        if self.unfilled:
            lines.append(f"netc layers without weights ({len(self.unfilled)}):")
            lines += [f"  {label}: {self.reasons.get(label, 'no module of a fitting kind')}" for label in self.unfilled]
        return "\n".join(lines)


def _fit(layer: NetcLayer, module: TorchModule) -> dict[str, np.ndarray]:
    """The layer's values from `module` by netc parameter name, or `Misfit` saying why not."""
    entry = CONVERTERS.get(layer.kind)
    if entry is None:
        raise Misfit(f"netc cannot import PyTorch weights for a {layer.kind} layer yet; map it by hand "
                     "into an .npz weight file")
    if module.kind not in entry.torch_kinds:
        raise Misfit(f"{module.path or '(top level)'} is a {module.kind} module, not one a {layer.kind} takes")
    values = entry.convert(layer, module)
    out = {}
    for param in layer.params:
        local = layer.local(param)
        if local not in values:
            raise Misfit(f"{module.path} gives no value for {param.name}")
        array = np.asarray(values[local])
        if tuple(array.shape) != tuple(param.shape):
            raise Misfit(_shape_reason(param, array, module, local))
        out[param.name] = array
    extra = set(values) - {layer.local(p) for p in layer.params}
    if extra:
        raise Misfit(f"{module.path} has {', '.join(sorted(extra))}, which {layer.label} has not "
                     f"(a bias where the netc layer has bias=false?)")
    return out


def _shape_reason(param: Param, array: np.ndarray, module: TorchModule, local: str) -> str:
    text = f"{param.name} needs {list(param.shape)}; {module.path} gives {list(array.shape)}"
    if array.ndim == 2 and tuple(array.shape[::-1]) == tuple(param.shape):
        text += " — a transpose of what is needed"
        if local == "weight" and module.kind == "matrix":
            text += " (a dense weight is [in, out] in netc, [out, in] in nn.Linear)"
    return text


def read_rules(path: str | Path) -> dict[str, str]:
    """`NETC_LAYER = TORCH_MODULE` per line (`#` starts a comment); an empty right side
    leaves the layer out of automatic pairing."""
    rules: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise NetcWeightsError(f"cannot read rules file {path}: {err}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        left, sep, right = line.partition("=")
        if not sep or not left.strip():
            raise NetcWeightsError(f"{path}:{number}: expected NETC_LAYER = TORCH_MODULE; got '{raw.strip()}'")
        rules[left.strip()] = right.strip()
    return rules


def import_state_dict(state: Mapping[str, np.ndarray], graph: Graph, rules: Mapping[str, str] | None = None,
                      cast: bool = False) -> ImportResult:
    """Pair `state`'s modules with `graph`'s layers and convert their tensors (see the
    module docstring). Raises `NetcWeightsError` for a rule that names no layer or
    module, or tensors of another dtype than their parameter without `cast`."""
    rules = dict(rules or {})
    modules, ignored = group_modules(state)
    by_path = {m.path: m for m in modules}
    layers = netc_layers(graph)
    labels = {layer.label for layer in layers}
    for left, right in rules.items():
        if left not in labels:
            raise NetcWeightsError(f"rules: the network has no layer '{left}'", None,
                                   ["layers: " + ", ".join(sorted(labels))])
        if right and right not in by_path:
            raise NetcWeightsError(f"rules: the state dict has no module '{right}'", None,
                                   ["modules: " + ", ".join(m.path for m in modules)])
    result = ImportResult({}, ignored=ignored)
    consumed: set[str] = set()  # PyTorch tensor names taken
    free = [m for m in modules if m.path not in set(rules.values())]
    for layer in layers:
        if layer.label in rules:
            if not rules[layer.label]:
                result.unfilled.append(layer.label)
                result.reasons[layer.label] = "left out by the rules file"
                continue
            module = by_path[rules[layer.label]]
            try:
                values = _fit(layer, module)
            except Misfit as err:
                raise NetcWeightsError(f"rules: {layer.label} = {module.path} does not fit: {err}") from None
            result.weights.update(values)
            consumed.update(_consumed(layer, module, values))
            result.pairings.append(Pairing(layer.label, module.path, "rule"))
            continue
        chosen, how, reason = _choose(layer, free)
        if chosen is None:
            result.unfilled.append(layer.label)
            result.reasons[layer.label] = reason
            continue
        values, module = chosen
        free.remove(module)
        result.weights.update(values)
        consumed.update(_consumed(layer, module, values))
        result.pairings.append(Pairing(layer.label, module.path, how))
    tensors = [(m.name(local), a) for m in modules for local, a in m.tensors.items()]
    taken = [(name, a) for name, a in tensors if name in consumed]
    for name, array in tensors:
        if name not in consumed:
            kept = _tied_to(array, taken)
            if kept is None:
                result.unmatched_torch.append(name)
            else:
                result.tied[name] = kept
    _check_dtypes(result, graph, cast)
    return result


def _consumed(layer: NetcLayer, module: TorchModule, values: Mapping[str, np.ndarray]) -> list[str]:
    """The PyTorch tensors a pairing takes: all of its module's, except for a free parameter,
    which takes one (the module's other tensors stay to be reported)."""
    if not layer.free:
        return [module.name(local) for local in module.tensors]
    chosen = [id(a) for a in values.values()]
    return [module.name(local) for local, a in module.tensors.items() if id(a) in chosen]


def _tied_to(array: np.ndarray, taken: list[tuple[str, np.ndarray]]) -> str | None:
    """The name of a taken tensor that `array` equals (a tied weight saved under two names).
    A constant array (a fresh zero bias) could equal anything, so it is never a tied copy."""
    if array.size < 2 or np.all(array == array.flat[0]):
        return None
    for name, other in taken:
        if other.shape == array.shape and other.dtype == array.dtype and np.array_equal(other, array):
            return name
    return None


def _choose(layer: NetcLayer, free: list[TorchModule]) -> tuple[tuple[dict, TorchModule] | None, str, str]:
    fits: list[tuple[dict, TorchModule]] = []
    entry = CONVERTERS.get(layer.kind)
    best: tuple[int, str] | None = None  # the most telling reason a module did not fit
    leaf = layer.label.rpartition(".")[2]
    for module in free:
        if module.path.rpartition(".")[2] == leaf:
            try:
                return (_fit(layer, module), module), "name", ""
            except Misfit:
                break  # the first of that name does not fit: by order and shape instead
    for i, module in enumerate(free):
        try:
            values = _fit(layer, module)
        except Misfit as err:
            # A transpose says most, then a module of the right kind, then any other.
            rank = 0 if "transpose" in str(err) else 1 if entry and module.kind in entry.torch_kinds else 2
            if best is None or rank < best[0]:
                best = (rank, str(err))
            continue
        if i == 0:
            return (values, module), "order", ""
        fits.append((values, module))
    if len(fits) == 1:
        return fits[0], "shape", ""
    if fits:
        return fits[0], f"first of {len(fits)} that fit", ""
    return None, "", best[1] if best else "no unpaired module left"


def _check_dtypes(result: ImportResult, graph: Graph, cast: bool) -> None:
    wrong = []
    for param in graph.params:
        array = result.weights.get(param.name)
        if array is None or array.dtype == param.dtype.numpy:
            continue
        if not cast:
            wrong.append(f"{param.name} is {array.dtype}, the network wants {param.dtype.value}")
            continue
        result.weights[param.name] = array.astype(param.dtype.numpy)
        result.cast.append(param.name)
    if wrong:
        raise NetcWeightsError(f"{len(wrong)} tensor(s) have another dtype than their parameter: "
                               + "; ".join(wrong[:5]) + (" ..." if len(wrong) > 5 else ""), None,
                               ["pass --cast-weights (cast=True) to convert them, if the precision change is meant"])


def contiguous(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(array) for name, array in weights.items()}


def describe_layers(layers: Iterable[NetcLayer]) -> str:
    return ", ".join(f"{layer.label} ({layer.kind})" for layer in layers)
