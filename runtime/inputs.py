"""Run-time inputs: what a model expects, reading arrays from `.npy`/`.npz` files (never
pickle), checking them, and making random ones.

An `InputSpec` describes one model input the same way for a `.onnx` file and a compiled
`.net` network: a dim is an `int`, or a string naming a symbolic dim expression as the
ONNX `dim_param` spells it (`N`, `2*T`, `(T + 1)//2`).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from netc.compiler import dims as D
from netc.compiler.dim_bounds import MIN_SIZES_KEY, min_sizes_text  # noqa: F401  (re-exported)
from netc.compiler.ir import Graph, Op, Value
from netc.dsl.errors import NetcInputError, did_you_mean

MAX_DIM_TEXT = 1000  # longer dim_param strings (a foreign model's) are names, not parsed
_UNSPACED_SIGN = re.compile(r"\w[+-]|(?<=.)[+-]\w")
DEFAULT_INT_HIGH = 2  # integer inputs with no known bound draw from [0, 2)

_NETC_SPELLING = {"float": "f32", "double": "f64", "float16": "f16", "bfloat16": "bf16", "int8": "i8",
                  "int32": "i32", "int64": "i64", "uint8": "u8"}
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32", "tensor(int64)": "int64",
    "tensor(uint8)": "uint8", "tensor(uint16)": "uint16", "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype | None  # None: a type NumPy cannot hold (bfloat16, strings)
    shape: tuple[int | str, ...]
    type_name: str = ""  # how the model spells the type, for messages
    int_high: int = DEFAULT_INT_HIGH  # random integer values are drawn from [int_low, int_high)
    int_low: int = 0  # 1 for an integer divisor: a random 0 would be a division by zero

    def __str__(self) -> str:
        dtype = self.type_name or str(self.dtype)
        return f"{self.name}: {dtype}[{', '.join(str(d) for d in self.shape)}]"

    def symbols(self) -> list[str]:
        out: list[str] = []
        for d in self.shape:
            if isinstance(d, str):
                out += [s for s in dim_symbols(d) if s not in out]
        return out


# --------------------------------------------------------------------------- specs
def specs_from_session(session) -> list[InputSpec]:
    """Input specs of an onnxruntime `InferenceSession`."""
    specs = []
    for i in session.get_inputs():
        dtype = np.dtype(_ORT_TYPES[i.type]) if i.type in _ORT_TYPES else None
        shape = tuple(d if isinstance(d, int) else (d or f"?{i.name}.{axis}") for axis, d in enumerate(i.shape))
        onnx_name = i.type.removeprefix("tensor(").removesuffix(")")
        type_name = _NETC_SPELLING.get(onnx_name, onnx_name)
        specs.append(InputSpec(i.name, dtype, shape, type_name))
    return specs


def with_bounds(specs: Sequence[InputSpec], bounds: Mapping[str, int],
                lows: Mapping[str, int] | None = None) -> list[InputSpec]:
    lows = lows or {}
    out = [replace(s, int_high=bounds[s.name]) if s.name in bounds else s for s in specs]
    return [replace(s, int_low=lows[s.name], int_high=max(s.int_high, lows[s.name] + 1)) if s.name in lows else s
            for s in out]


def integer_lows(graph: Graph) -> dict[str, int]:
    """Integer inputs that an op divides by, or `last`'s lengths: random values start at 1."""
    names = {id(v): v.name for v in graph.inputs if v.type.dtype.is_int}
    # `last(lengths=)` needs 1 or more too: a sequence of no steps has no last one
    return {names[id(op.inputs[1])]: 1 for op in graph.walk()
            if op.kind in ("div", "floordiv", "mod", "last") and len(op.inputs) > 1 and op.inputs[1] is not None
            and id(op.inputs[1]) in names}


def integer_bounds(graph: Graph) -> dict[str, int]:
    """For each integer input, the exclusive upper bound of valid values, when an op that
    consumes it (directly or through integer-valued ops) tells one: an `embed`'s vocabulary
    (its table's first dim), a `one_hot`'s depth, or the size of the axis a `gather`,
    `take_along` or `scatter` indexes."""
    consumers: dict[int, list[Op]] = {}
    for op in graph.walk():
        for v in op.inputs:
            if v is not None:
                consumers.setdefault(id(v), []).append(op)
    bounds = {}
    for v in graph.inputs:
        if v.type.dtype.is_int:
            bound = _bound(v, consumers, depth=0)
            if bound is not None:
                bounds[v.name] = bound
    return bounds


def _bound(value: Value, consumers: Mapping[int, list[Op]], depth: int) -> int | None:
    found: list[int] = []
    for op in consumers.get(id(value), []):
        if op.kind == "embed":
            tables = [v for v in op.inputs if v is not None and v.param is not None]
            if tables and tables[0].param is not None and tables[0].param.shape:
                found.append(tables[0].param.shape[0])
        elif op.kind == "one_hot":
            depth_attr = op.attrs.get("depth", op.attrs.get("classes"))
            if isinstance(depth_attr, int) and depth_attr > 0:
                found.append(depth_attr)
        elif op.kind in ("gather", "take_along", "scatter") and op.inputs[1] is value:
            size = op.inputs[0].type.shape[op.attrs["axis"]]  # indices into that axis
            if isinstance(size, int):
                found.append(size)
        elif depth < 8:
            for out in op.outputs:
                if out.type.dtype.is_int:
                    bound = _bound(out, consumers, depth + 1)
                    if bound is not None:
                        found.append(bound)
    return min(found) if found else None


# --------------------------------------------------------------------------- dim expressions
def dim_symbols(text: str) -> list[str]:
    """The names in a dim expression, in order of appearance."""
    tree = _parse_dim(text)
    if tree is None:
        return [text]
    found = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name)), key=lambda n: n.col_offset)
    return list(dict.fromkeys(n.id for n in found))


def eval_dim(text: str, env: Mapping[str, int]) -> int | None:
    """The value of a dim expression, or None when a name in it has no value."""
    tree = _parse_dim(text)
    if tree is None:
        return env.get(text)
    try:
        return _eval(tree.body, env)
    except KeyError:
        return None


def _parse_dim(text: str) -> ast.Expression | None:
    """Parse `N`, `2*T - 1`, `(T + 1)//2` with Python's parser (nothing is evaluated by
    it); anything outside integer arithmetic over names is an opaque dim name. netc writes
    spaces around `+` and `-`, so `batch-size` (from another exporter) is a name."""
    if len(text) > MAX_DIM_TEXT or _UNSPACED_SIGN.search(text):  # a huge expression: an opaque name
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load,
               ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.USub)
    for node in ast.walk(tree):
        if not isinstance(node, allowed) or (isinstance(node, ast.Constant) and type(node.value) is not int):
            return None
    return tree


def _eval(node: ast.expr, env: Mapping[str, int]) -> int:
    if isinstance(node, ast.Constant):
        return int(node.value)
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        return -_eval(node.operand, env)
    assert isinstance(node, ast.BinOp)
    a, b = _eval(node.left, env), _eval(node.right, env)
    if isinstance(node.op, ast.Add):
        return a + b
    if isinstance(node.op, ast.Sub):
        return a - b
    if isinstance(node.op, ast.Mult):
        return a * b
    return a // b if b else 0


# --------------------------------------------------------------------------- reading
MAX_INPUT_BYTES = 4 * 2**30  # one input file: far above any batch netc's examples take, far below RAM


def read_inputs(pairs: Iterable[str] = (), npz: str | Path | None = None,
                specs: Sequence[InputSpec] | None = None, limit: int = MAX_INPUT_BYTES) -> dict[str, np.ndarray]:
    """Arrays from `--inputs FILE.npz` (keys are input names) and `--input NAME=FILE.npy`
    (which win over the archive). Every size is checked before it is read (see
    `netc.array_files`); with the model's `specs`, an array of a name or shape the model
    does not take is not read at all, and `check_inputs` reports it."""
    expected = None if specs is None else {s.name: tuple(d if isinstance(d, int) else None for d in s.shape)
                                           for s in specs}
    arrays: dict[str, np.ndarray] = {}
    if npz is not None:
        arrays.update(_load(Path(npz), True, expected, limit))
    for pair in pairs:
        name, sep, file = pair.partition("=")
        if not sep or not name or not file:
            raise NetcInputError(f"--input {pair}: expected NAME=FILE.npy")
        one = None if expected is None else {Path(file).stem: expected.get(name, ())}
        loaded = _load(Path(file), False, one, limit)
        arrays[name] = next(iter(loaded.values()))
    return arrays


def _load(path: Path, expect_archive: bool, expected: Mapping[str, tuple] | None, limit: int) -> dict[str, np.ndarray]:
    from netc.array_files import read_npy, read_npz

    if not path.is_file():
        raise NetcInputError(f"input file not found: {path}" if not path.exists() else f"{path} is not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        raise NetcInputError(f"cannot read {path}: {err.strerror}") from None
    if magic.startswith(b"PK"):
        arrays = read_npz(path, limit, expected, NetcInputError)
        if not expect_archive and len(arrays) != 1:
            raise NetcInputError(f"--input wants one array; {path} holds {len(arrays)}", None,
                                 ["pass an archive of named arrays with --inputs FILE.npz"])
        return arrays
    if magic != b"\x93NUMPY":
        raise NetcInputError(f"cannot read {path} as a NumPy file: it is neither .npy nor .npz", None,
                             ["save plain numeric arrays with numpy.save / numpy.savez"])
    if expect_archive:
        raise NetcInputError(f"--inputs wants a .npz archive of named arrays; {path} holds one array",
                             None, [f"pass it as --input NAME={path}"])
    shape = None if expected is None else next(iter(expected.values()))
    return {path.stem: read_npy(path, limit, shape, NetcInputError)}


# --------------------------------------------------------------------------- checking
def check_inputs(specs: Sequence[InputSpec], arrays: Mapping[str, np.ndarray], partial: bool = False) -> dict[str, int]:
    """Check names, dtypes and shapes; returns the symbolic-dim values the arrays fix.
    With `partial`, inputs may be missing (they are made up afterwards)."""
    names = [s.name for s in specs]
    if not isinstance(arrays, Mapping):
        raise NetcInputError(f"inputs must map input names to NumPy arrays; got {type(arrays).__name__}", None,
                             ["inputs: " + ", ".join(map(str, specs))])
    for name in arrays:
        if name not in names:
            raise NetcInputError(f"the model has no input named '{name}'", None,
                                 [did_you_mean(name, names) or "", "inputs: " + ", ".join(map(str, specs))])
    missing = [s for s in specs if s.name not in arrays]
    if missing and not partial:
        raise NetcInputError("missing input" + ("s" if len(missing) > 1 else "") + ": "
                             + ", ".join(map(str, missing)), None,
                             ["give each with --input NAME=FILE.npy, or pass --random to make up the rest"])
    env: dict[str, int] = {}
    for spec in specs:
        if spec.name not in arrays:
            continue
        array = arrays[spec.name]
        expected = f"the model expects {spec}"
        if not isinstance(array, np.ndarray):
            raise NetcInputError(f"input '{spec.name}' must be a NumPy array; got {type(array).__name__}", None,
                                 [f"numpy.asarray(value, dtype=numpy.{spec.dtype})" if spec.dtype else ""])
        if spec.dtype is None:
            raise NetcInputError(f"input '{spec.name}' has type {spec.type_name}, which netc cannot feed from NumPy")
        if array.dtype != spec.dtype:
            raise NetcInputError(f"input '{spec.name}' has dtype {array.dtype}; {expected}", None,
                                 [f"convert it: array.astype(numpy.{spec.dtype}), or pass cast_inputs=True "
                                  "(command line: --cast-inputs)"])
        if array.ndim != len(spec.shape):
            raise NetcInputError(f"input '{spec.name}' has shape {list(array.shape)} (rank {array.ndim}); "
                                 f"{expected} (rank {len(spec.shape)})")
        for axis, (d, n) in enumerate(zip(spec.shape, array.shape)):
            if isinstance(d, int):
                if d != n:
                    raise NetcInputError(f"input '{spec.name}' has shape {list(array.shape)}; {expected} "
                                         f"(axis {axis} must be {d})")
            elif dim_symbols(d) == [d]:  # a plain named dim: the array fixes its value
                if d in env and env[d] != n:
                    raise NetcInputError(f"input '{spec.name}' axis {axis} is {n}, but {d} = {env[d]} "
                                         "from an earlier input")
                env[d] = n
    for spec in specs:  # composite dims (2*T) must agree with their symbols
        if spec.name not in arrays:
            continue
        for axis, d in enumerate(spec.shape):
            if isinstance(d, str):
                want = eval_dim(d, env)
                have = arrays[spec.name].shape[axis]
                if want is not None and want != have:
                    raise NetcInputError(f"input '{spec.name}' axis {axis} is {have}; expected {d} = {want}")
    return env


# --------------------------------------------------------------------------- making up
def resolve_sizes(specs: Sequence[InputSpec], sizes: Mapping[str, int], default: int | Sequence[int] = 1,
                  minima: Mapping[str, int] | None = None) -> dict[str, int]:
    """A value for every symbolic dim: from `sizes`, else `default` (an int, or a cycle of
    ints given to the dims in order of appearance), shifted up to the least size the model
    needs (`minima`: a cycle 2, 3 becomes 5, 6 for a dim that must be at least 5)."""
    cycle = [default] if isinstance(default, int) else list(default)
    minima = minima or {}
    env = dict(sizes)
    k = 0
    for spec in specs:
        for s in spec.symbols():
            if s not in env:
                value = cycle[k % len(cycle)]
                env[s] = max(value, minima.get(s, 1) + value - min(cycle))
                k += 1
    for name, least in minima.items():
        if name in sizes and sizes[name] < least:
            raise NetcInputError(f"{name} = {sizes[name]} is below the least size the model needs "
                                 f"({name} ≥ {least})", None, [f"use --set {name}={least} or more"])
    return env


def min_sizes_of(session) -> dict[str, int]:
    """The least sizes a netc-compiled model records in its metadata (none for others)."""
    try:
        text = session.get_modelmeta().custom_metadata_map.get(MIN_SIZES_KEY, "")
    except Exception:  # metadata is a courtesy: a model without it just has no minima
        return {}
    found = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.isidentifier() and value.isdigit() and len(value) < 19:
            found[name] = int(value)
    return found


def random_array(spec: InputSpec, env: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
    if spec.dtype is None:
        raise NetcInputError(f"cannot make a random value for input '{spec.name}' of type {spec.type_name}")
    shape = []
    for d in spec.shape:
        n = d if isinstance(d, int) else eval_dim(d, env)
        if n is None or n < 0:
            raise NetcInputError(f"input '{spec.name}': cannot tell the size of dim {d}",
                                 None, [f"give it with --set {dim_symbols(str(d))[0]}=..."])
        shape.append(n)
    nbytes = math.prod(shape) * spec.dtype.itemsize
    if nbytes > MAX_INPUT_BYTES:  # `--set N=10**12` or `--batch 10**12`: refuse, do not try
        raise NetcInputError(f"a random input '{spec.name}' of shape {shape} would take {nbytes / 2**30:,.1f} GiB, "
                             f"over the limit of {MAX_INPUT_BYTES / 2**30:.0f} GiB for one input", None,
                             ["use smaller sizes with --set or --batch"])
    if spec.dtype == np.bool_:
        return rng.integers(0, 2, shape, dtype=np.int8).astype(bool)
    if np.issubdtype(spec.dtype, np.integer):
        return rng.integers(spec.int_low, max(spec.int_high, spec.int_low + 1), shape, dtype=spec.dtype)
    if spec.dtype == np.float64:
        return rng.standard_normal(shape)
    # drawn as float32 directly: no float64 array three times the input's size on the way
    return rng.standard_normal(shape, dtype=np.float32).astype(spec.dtype, copy=False)


def random_inputs(specs: Sequence[InputSpec], seed: int = 0, sizes: Mapping[str, int] | None = None,
                  default: int | Sequence[int] = 1, given: Mapping[str, np.ndarray] | None = None,
                  minima: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Every input: the `given` arrays, and random ones for the rest, whose symbolic dims
    agree with the given arrays, then `sizes`, then `default` raised to `minima`."""
    given = dict(given or {})
    fixed = check_inputs(specs, given, partial=True)
    env = resolve_sizes(specs, {**(sizes or {}), **fixed}, default, minima)
    rng = np.random.default_rng(seed)
    return {s.name: given[s.name] if s.name in given else random_array(s, env, rng) for s in specs}


def graph_specs(graph: Graph) -> list[InputSpec]:
    """Input specs of an IR graph (as its ONNX model will declare them), with integer bounds."""
    bounds = integer_bounds(graph)
    lows = integer_lows(graph)
    specs = []
    for v in graph.inputs:
        try:
            dtype: np.dtype | None = v.type.dtype.numpy
        except TypeError:
            dtype = None
        shape = tuple(d if isinstance(d, int) else D.dim_str(d) for d in v.type.shape)
        high = bounds.get(v.name, DEFAULT_INT_HIGH)
        low = lows.get(v.name, 0)
        specs.append(InputSpec(v.name, dtype, shape, v.type.dtype.value, max(high, low + 1), low))
    return specs
