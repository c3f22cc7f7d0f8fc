"""Parameter values: deterministic seeded initialisation, and loading trained weights by name
from `.npz` or `.safetensors` files (never pickle)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from netc.compiler.ir import DType, Graph, Param
from netc.dsl.errors import NetcTypeError, NetcWeightsError


def _rng(seed: int, name: str) -> np.random.Generator:
    # Each parameter draws from its own stream keyed by (seed, name): adding a layer does
    # not change the initial values of the others.
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


def initialise(param: Param, seed: int, out: np.ndarray | None = None) -> np.ndarray:
    """The parameter's initial values, drawn into `out` when given (an array of the
    parameter's shape and dtype)."""
    if out is None:
        out = np.empty(param.shape, param.dtype.numpy)
    elif out.shape != param.shape or out.dtype != param.dtype.numpy:
        raise ValueError(f"buffer for {param.name} is {out.dtype}{list(out.shape)}, "
                         f"not {param.dtype.numpy}{list(param.shape)}")
    drawer(param, seed)(out.reshape(-1))
    return out


def drawer(param: Param, seed: int) -> Callable[[np.ndarray], None]:
    """A function that fills successive pieces of the parameter's flattened initial values:
    called on consecutive slices, it writes exactly `initialise(param, seed).ravel()`
    (NumPy's generators give the same stream drawn at once or in pieces), so a writer can
    draw a large weight piece by piece."""
    init = param.init
    scheme = init.scheme
    if scheme in ("zeros", "ones", "constant"):
        value = {"zeros": 0.0, "ones": 1.0}.get(scheme, init.arg("value", 0.0) if scheme == "constant" else 0.0)
        return lambda out: out.fill(value)
    if scheme in ("array", "identity", "orthogonal"):
        # Matrix-shaped (a QR, an eye per block) or given whole: made at once, handed out
        # in consecutive pieces.
        return _whole(lambda: _matrix_values(param, seed))
    rng = _rng(seed, param.name)
    # Draw in float32 unless the parameter is float64: half the work and no cast for the
    # common case (ResNet-50's 25.6M values: about 0.1 s instead of 0.3 s).
    draw = np.float64 if param.dtype.numpy == np.float64 else np.float32
    fan_in, fan_out = param.fan_in, param.fan_out
    if scheme == "glorot_uniform":
        limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
        kind, a, b = "uniform", -limit, limit
    elif scheme == "glorot_normal":
        kind, a, b = "normal", 0.0, float(np.sqrt(2.0 / (fan_in + fan_out)))
    elif scheme == "he_uniform":
        limit = float(np.sqrt(6.0 / fan_in))
        kind, a, b = "uniform", -limit, limit
    elif scheme == "he_normal":
        kind, a, b = "normal", 0.0, float(np.sqrt(2.0 / fan_in))
    elif scheme == "lecun_normal":
        kind, a, b = "normal", 0.0, float(np.sqrt(1.0 / fan_in))
    elif scheme == "normal":
        kind, a, b = "normal", init.arg("mean", 0.0), init.arg("std", 0.01)
    elif scheme == "uniform":
        kind, a, b = "uniform", init.arg("low", -0.05), init.arg("high", 0.05)
    else:  # pragma: no cover - schemes are validated when parsed
        raise ValueError(f"unknown initialiser {scheme}")

    def fill(out: np.ndarray) -> None:
        values = out if out.dtype == draw else np.empty(out.shape, draw)
        if kind == "uniform":  # low + (high - low) * U[0, 1)
            rng.random(dtype=draw, out=values)
            np.multiply(values, draw(b - a), out=values)
            np.add(values, draw(a), out=values)
        else:  # mean + std * N(0, 1)
            rng.standard_normal(dtype=draw, out=values)
            np.multiply(values, draw(b), out=values)
            np.add(values, draw(a), out=values)
        if values is not out:
            out[...] = values

    return fill


def _whole(make: Callable[[], np.ndarray]) -> Callable[[np.ndarray], None]:
    """A filler for values that cannot be drawn piece by piece: `make()` is called once, on
    the first piece, and consecutive pieces copy consecutive slices of its flattened values."""
    values: np.ndarray | None = None
    offset = 0

    def fill(out: np.ndarray) -> None:
        nonlocal values, offset
        if values is None:
            values = make().reshape(-1)
        out[...] = values[offset:offset + out.size]
        offset += out.size

    return fill


def _matrix_values(param: Param, seed: int) -> np.ndarray:
    """The whole value of an `array`, `identity` or `orthogonal` parameter."""
    init, shape, dtype = param.init, param.shape, param.dtype.numpy
    if init.scheme == "array":
        return np.asarray(init.values, dtype).reshape(shape)
    if init.scheme == "identity":
        return _blockwise(shape, lambda r, c: np.eye(r, c), init.arg("gain", 1.0)).astype(dtype)
    rng = _rng(seed, param.name)
    return _blockwise(shape, lambda r, c: _orthogonal(rng, r, c), init.arg("gain", 1.0)).astype(dtype, copy=False)


def _blockwise(shape: tuple[int, ...], block, gain: float) -> np.ndarray:
    """A matrix initialiser applied to `shape` read as [rows, cols] (cols = the product of the
    other axes): one block per square [cols, cols] slice of rows when rows is a multiple of
    cols (the gates of a recurrent weight [G*H, H] each get their own), else one block."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    if rows > cols and rows % cols == 0:
        matrix = np.concatenate([block(cols, cols) for _ in range(rows // cols)], axis=0)
    else:
        matrix = block(rows, cols)
    return (gain * matrix).reshape(shape)


def _orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A [rows, cols] matrix with orthonormal rows or columns (whichever are fewer): the Q of
    a Gaussian matrix's QR decomposition, signs fixed so it is uniformly distributed."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if rows >= cols else q.T


def read_weight_file(path: str | Path, expected: Mapping[str, tuple[int, ...]] | None = None,
                     limit: int = 2**63) -> dict[str, np.ndarray]:
    """Tensors by name from `.npz` or `.safetensors`; corrupt files are a `NetcWeightsError`.
    Sizes are checked before reading (see `netc.array_files`): with `expected` (the
    parameters' shapes), a tensor of another name or shape is not read, only reported."""
    from netc.array_files import read_npz, read_safetensors

    path = Path(path)
    if not path.is_file():
        raise NetcWeightsError(f"weight file not found: {path}" if not path.exists()
                               else f"weight file not found: {path} is not a file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":  # np.save output, not an archive of named tensors
                raise NetcWeightsError(f"cannot read weight file {path}: it holds a single ndarray (a .npy "
                                       "file?), not an .npz archive of named tensors",
                                       None, ["save the tensors by name with numpy.savez(path, **tensors)"])
        return read_npz(path, limit, expected, NetcWeightsError)
    if suffix == ".safetensors":
        return read_safetensors(path, limit, expected, NetcWeightsError)
    raise NetcWeightsError(f"weight files are .npz or .safetensors; got {path.name}")


def materialise(graph: Graph, seed: int = 0, weights: Mapping[str, np.ndarray] | None = None,
                source: str = "weights", strict: bool = True, cast: bool = False) -> dict[str, np.ndarray]:
    """Values for every parameter: loaded from `weights` when given, else initialised.

    With `weights`, every parameter must be present with its exact shape and dtype (with
    `cast`, a float of another precision is converted), and no tensor may be left over
    (`strict`).
    """
    values: dict[str, np.ndarray] = {}
    problems: list[str] = []
    if weights is not None:
        expected = {p.name for p in graph.params}
        missing = [p.name for p in graph.params if p.name not in weights]
        extra = sorted(set(weights) - expected)
        if missing:
            problems.append(f"missing {len(missing)} tensor(s): " + ", ".join(missing[:5])
                            + (" ..." if len(missing) > 5 else ""))
        if extra and strict:
            problems.append(f"{len(extra)} unexpected tensor(s): " + ", ".join(extra[:5])
                            + (" ..." if len(extra) > 5 else ""))
    for p in graph.params:
        if weights is not None and p.name in weights:
            array = np.asarray(weights[p.name])
            if tuple(array.shape) != p.shape:
                transposed = array.ndim == 2 and tuple(array.shape[::-1]) == p.shape
                problems.append(f"'{p.name}' has shape {list(array.shape)}, the network expects {list(p.shape)}"
                                + (" (the transpose: a PyTorch nn.Linear weight is [out, in], netc's dense "
                                   "weight [in, out]; `netc weights import` converts a state dict)"
                                   if transposed else ""))
                continue
            if not _dtype_compatible(array.dtype, p.dtype, cast):
                problems.append(f"'{p.name}' has dtype {array.dtype}, the network expects {p.dtype.value}"
                                + (" (pass --cast-weights to convert)" if _dtype_compatible(array.dtype, p.dtype, True)
                                   else ""))
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                value = np.ascontiguousarray(array.astype(p.dtype.numpy, copy=False))
            overflow = _overflow(array, value, p)
            if overflow:
                problems.append(overflow)
                continue
            values[p.name] = value
        elif weights is None:
            with np.errstate(over="ignore", invalid="ignore"):
                value = initialise(p, seed)
            if p.dtype.is_float and not np.isfinite(value).all():
                largest = float(np.finfo(p.dtype.numpy).max)
                raise NetcTypeError(f"the initialiser {p.init} of parameter '{p.name}' makes values beyond the range "
                                    f"of {p.dtype.value} (largest finite magnitude {largest:g})", p.span,
                                    ["use smaller initialiser arguments, or a wider dtype"])
            values[p.name] = value
    if problems:
        raise NetcWeightsError(f"{source} do not match network '{graph.name}': " + "; ".join(problems),
                               None, ["`netc params FILE` lists the expected names and shapes"])
    return values


def _overflow(source: np.ndarray, value: np.ndarray, p: Param) -> str | None:
    """A problem when narrowing to the parameter's float dtype turned finite values into
    infinities (f64 1e300 into f32): never a silent inf."""
    if not p.dtype.is_float or source.dtype.itemsize <= value.dtype.itemsize:
        return None
    with np.errstate(invalid="ignore"):
        lost = np.isinf(value) & np.isfinite(source)
    if not lost.any():
        return None
    first = float(source[np.unravel_index(int(np.argmax(lost)), source.shape)]) if source.ndim else float(source)
    largest = float(np.finfo(p.dtype.numpy).max)
    return (f"'{p.name}' holds {int(lost.sum()):,} value(s) beyond the range of {p.dtype.value} (e.g. {first:g}; "
            f"largest finite magnitude {largest:g})")


def _dtype_compatible(have: np.dtype, want: DType, cast: bool = False) -> bool:
    """The same dtype; with `cast`, also any float for a float parameter. A silent cast
    would hide a mistake (an f64 checkpoint loses precision, f16 gains none)."""
    try:
        if have == want.numpy:
            return True
    except TypeError:  # a dtype NumPy cannot hold (bf16): any float, converted
        return want.is_float and np.issubdtype(have, np.floating)
    return cast and want.is_float and np.issubdtype(have, np.floating)
