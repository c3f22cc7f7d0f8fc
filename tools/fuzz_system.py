"""The fuzzer's system classes: what a user hands netc besides `.net` text.

  files      `.npy`/`.npz`/`.safetensors` inputs and weights with lying headers, zip
             members that claim other sizes, truncations, random bytes and dtypes
  outputs    -o targets of every kind: FIFOs, folders, symlinks (to folders, to inputs,
             dangling, to other folders), a trailing slash, a missing folder, 250-char
             names, the inputs themselves; devices are only checked, never written
  runtime    accepted programs run on onnxruntime and the reference with random inputs of
             random sizes, and with hostile integer inputs (0 divisors, negative ids)
  argv       command lines with random numbers for every numeric option (parsing only)

Each case is a function of (seed, index). The oracle is the fuzzer's: success or a
`NetcError` is fine, any other exception is a crash (the CLI's exit 3); and no output
may land where it must not (a device, a FIFO, an input file).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np

KINDS = ("files", "outputs", "runtime", "argv")
SMALL_NET = "network M {\n  input x: f32[N, 3]\n  output y = dense(x, 4)\n}\n"
RUNTIME_NETS = [
    "network M {\n  input ids: i64[N, T]\n  e = embed(ids, 50, 8) -> transpose(0, 2, 1)\n"
    "  output y = conv1d(e, 4, kernel=3) -> global_maxpool -> flatten\n}\n",
    "network M {\n  input a: i32[N, 4]\n  input b: i32[N, 4]\n  output y = a // b\n  output z = a % b\n}\n",
    "network M {\n  input x: f32[T, N, 4]\n  input lengths: i32[N]\n  h = lstm(x, 5, lengths=lengths)\n"
    "  output y = last(h, lengths=lengths)\n}\n",
    "network M {\n  input x: f32[N, 1, H, W]\n  output y = x -> conv2d(2, kernel=3) -> maxpool(2) -> flatten\n}\n",
    "network M {\n  input x: f32[N, T]\n  output y = x[:, 2:] * 2.0\n}\n",
    "network M {\n  input x: f32[T, N, 8]\n  output y = multihead_attention(x, heads=2, causal=true)\n}\n",
    "network M {\n  input x: f32[N, 2, T]\n  output y = x -> conv_transpose1d(3, 3, stride=2) -> resize(scale=0.5)\n}\n",
]


def describe(kind: str, seed: int, index: int) -> bytes:
    return f"system:{kind}:{seed}:{index}".encode()


def run_case(kind: str, seed: int, index: int, folder: Path) -> None:
    """One case; raises what netc raised (the caller classifies it)."""
    rng = random.Random(f"system:{kind}:{seed}:{index}")
    case = folder / f"sys{index % 64}"
    case.mkdir(parents=True, exist_ok=True)
    for old in case.iterdir():
        if old.is_dir() and not old.is_symlink():
            import shutil

            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    {"files": _files, "outputs": _outputs, "runtime": _runtime, "argv": _argv}[kind](rng, case)


# --------------------------------------------------------------------------- files
def _npy_bytes(rng: random.Random) -> bytes:
    shape = tuple(rng.choice([0, 1, 3, 4, 7, 10**rng.randint(1, 13)]) for _ in range(rng.randint(0, 3)))
    descr = rng.choice(["<f4", "<f8", "<i8", "|u1", "<f2", "|O", "<c8", "|b1", "<U3", "V8"])
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": rng.random() < 0.2, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header) if rng.random() < 0.8 else \
        np.lib.format.write_array_header_2_0(buf, header)
    data = buf.getvalue()
    body = rng.choice([0, 12, 48, 4096, rng.randint(0, 300)])
    data += bytes(rng.getrandbits(8) for _ in range(min(body, 4096)))
    if rng.random() < 0.2:  # corrupt a byte of the header
        i = rng.randrange(len(data))
        data = data[:i] + bytes([rng.getrandbits(8)]) + data[i + 1:]
    if rng.random() < 0.1:
        data = data[:rng.randrange(len(data) + 1)]
    return data


def _npz_bytes(rng: random.Random, names: list[str]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), \
            zipfile.ZipFile(buf, "w", rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as archive:
        warnings.simplefilter("ignore")  # duplicate member names are part of the test
        for _ in range(rng.randint(0, 3)):
            name = rng.choice([*names, "x", "other", "dir/", "a.txt"])
            member = name if name.endswith(("/", ".txt")) else name + ".npy"
            archive.writestr(member, _npy_bytes(rng) if rng.random() < 0.7 else
                             np_save_bytes(rng))
    data = bytearray(buf.getvalue())
    for _ in range(rng.choice([0, 0, 1, 3])):  # lie in the local or central headers (sizes, CRCs)
        if data:
            i = rng.randrange(len(data))
            data[i] = rng.getrandbits(8)
    return bytes(data)


def np_save_bytes(rng: random.Random) -> bytes:
    buf = io.BytesIO()
    shape = rng.choice([(3, 4), (4,), (1, 3), (2, 3), ()])
    dtype = rng.choice([np.float32, np.float64, np.float16, np.int64])
    value = rng.choice([0.0, 1.0, 1e300, -1e39, float("nan"), 70000.0])
    with np.errstate(over="ignore"):
        np.save(buf, np.full(shape, value).astype(dtype), allow_pickle=False)
    return buf.getvalue()


def _safetensors_bytes(rng: random.Random, names: list[str]) -> bytes:
    header: dict = {}
    offset = 0
    for _ in range(rng.randint(0, 3)):
        shape = [rng.choice([0, 1, 3, 4, 10**rng.randint(1, 12)]) for _ in range(rng.randint(0, 2))]
        dtype = rng.choice(["F32", "F64", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I64", "U8", "BOOL", "X"])
        size = rng.choice([0, 12, 48, rng.randint(0, 100)])
        header[rng.choice([*names, "other"])] = {"dtype": dtype, "shape": shape,
                                                 "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    if rng.random() < 0.2:
        raw = raw[:rng.randrange(len(raw) + 1)]
    length = len(raw) if rng.random() < 0.8 else rng.choice([0, 2**62, len(raw) + 10, 2**64 - 1])
    return struct.pack("<Q", length) + raw + bytes(min(offset, 4096) if rng.random() < 0.8 else rng.randint(0, 64))


def _files(rng: random.Random, case: Path) -> None:
    import netc
    from netc.runtime.inputs import read_inputs
    from netc.runtime.session import make_session

    net = case / "m.net"
    net.write_text(SMALL_NET)
    names = ["dense0.weight", "dense0.bias"]
    roll = rng.randrange(5)
    if roll == 4:  # a `netc batch` dataset shard
        _shard(rng, case, net)
        return
    if roll == 0:
        path = case / "w.npz"
        path.write_bytes(_npz_bytes(rng, names))
        netc.compile_file(net, weights=path)
    elif roll == 1:
        path = case / "w.safetensors"
        path.write_bytes(_safetensors_bytes(rng, names))
        netc.compile_file(net, weights=path)
    else:
        compiled = netc.compile_file(net)
        session = make_session(compiled.model)
        from netc.runtime.inputs import specs_from_session

        specs = specs_from_session(session.session)
        if roll == 2:
            path = case / "x.npy"
            path.write_bytes(_npy_bytes(rng) if rng.random() < 0.7 else np_save_bytes(rng))
            arrays = read_inputs([f"x={path}"], None, specs if rng.random() < 0.7 else None)
        else:
            path = case / "in.npz"
            path.write_bytes(_npz_bytes(rng, ["x"]))
            arrays = read_inputs([], path, specs if rng.random() < 0.7 else None)
        from netc.runtime.run import run_session

        run_session(session, arrays, specs)


def _shard(rng: random.Random, case: Path, net: Path) -> None:
    """Plan and read a `netc batch` dataset of one lying or truncated shard."""
    import netc
    from netc.runtime import batch, datasets

    data = case / "data"
    data.mkdir()
    if rng.random() < 0.5:
        (data / "a.npy").write_bytes(_npy_bytes(rng) if rng.random() < 0.7 else np_save_bytes(rng))
    else:
        (data / "a.npz").write_bytes(_npz_bytes(rng, ["x"]))
    compiled = netc.compile_file(net)
    specs, shapes = batch.model_io(compiled.model)
    plan = batch.make_plan(compiled.model.SerializeToString(), specs, shapes, data, case / "out",
                           shard_rows=rng.choice([None, 1, 3]))
    for unit in plan.units[:2]:
        datasets.read_rows(plan.shards[unit.shard], unit.start, unit.stop, plan.specs, plan.axes)


# --------------------------------------------------------------------------- outputs
def _outputs(rng: random.Random, case: Path) -> None:
    import netc

    net = case / "m.net"
    net.write_text(SMALL_NET)
    (case / "lib").mkdir()
    weights = case / "w.npz"
    roll = rng.randrange(12)
    if roll == 0:
        os.mkfifo(case / "fifo")
        target = str(case / "fifo")
    elif roll == 1:
        (case / "dir").mkdir()
        target = str(case / "dir")
    elif roll == 2:
        target = f"{case}/sub/"
    elif roll == 3:
        target = str(case / "missing" / "m.onnx")
    elif roll == 4:
        target = str(case / ("n" * rng.randint(200, 255)))
    elif roll == 5:
        (case / "link").symlink_to(net)
        target = str(case / "link")
    elif roll == 6:
        (case / "dangling").symlink_to(case / "lib" / "there.onnx")
        target = str(case / "dangling")
    elif roll == 7:
        (case / "todir").symlink_to(case / "lib")
        target = str(case / "todir")
    elif roll == 8:
        target = str(case / "lib" / ".." / "m.net")
    elif roll == 9:
        target = rng.choice(["/dev/null", "/dev/zero", "/dev/full", "/dev/random"])
        from netc.files import check_output_path

        check_output_path(target, net)  # must refuse: never written, whatever happens
        raise AssertionError(f"-o {target} was accepted")
    elif roll == 10:
        import numpy as np

        np.savez(weights, **{"dense0.weight": np.zeros((3, 4), np.float32), "dense0.bias": np.zeros(4, np.float32)})
        target = str(weights)
    else:
        target = str(case / ("o" * rng.randint(1, 20) + ".onnx"))
    kinds = _kinds(case)
    before = {p: p.read_bytes() for p in (net, weights) if p.exists()}
    try:
        compiled = netc.compile_file(net, weights=weights if weights.exists() else None)
        compiled.save(target, net)
    finally:
        for path, data in before.items():
            assert path.read_bytes() == data, f"{path.name} was overwritten"
        for path, kind in kinds.items():
            if kind not in ("file", "absent"):
                assert _kind(path) == kind, f"{path.name} ({kind}) was replaced"


def _kinds(case: Path) -> dict[Path, str]:
    return {p: _kind(p) for p in case.iterdir()}


def _kind(path: Path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "absent"
    for test, name in ((stat.S_ISLNK, "link"), (stat.S_ISDIR, "dir"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISREG, "file")):
        if test(mode):
            return name
    return "other"


# --------------------------------------------------------------------------- runtime
def _runtime(rng: random.Random, case: Path) -> None:
    import netc
    from netc.runtime.inputs import graph_specs, random_inputs
    from netc.runtime.reference import run_graph

    source = rng.choice(RUNTIME_NETS)
    settings = {}
    if rng.random() < 0.3:
        settings[rng.choice(["T", "H", "W", "N"])] = rng.choice([1, 2, 3, 5, 8])
    net = case / "r.net"
    net.write_text(source)
    compiled = netc.compile_file(net, settings=settings)
    specs = graph_specs(compiled.graph)
    sizes = {s: rng.choice([1, 2, 3, 4, 9]) for spec in specs for s in spec.symbols()} if rng.random() < 0.5 else {}
    inputs = random_inputs(specs, rng.randrange(1000), sizes, default=1, minima=compiled.graph.min_sizes.minima)
    for name, array in inputs.items():  # hostile integers: zeros, negatives, huge values
        if array.dtype.kind == "i" and rng.random() < 0.5:
            hostile = np.array([0, -1, 1, 2**31 - 1, 10**6, -(2**31)], dtype=array.dtype)
            inputs[name] = rng.choice(hostile.tolist()) * np.ones_like(array) if array.size else array
    netc.run(compiled, inputs)
    run_graph(compiled.graph, compiled.params, inputs)


# --------------------------------------------------------------------------- argv
_NUMBERS = ["-1", "0", "1", "3", "2**40", "1e400", "inf", "-inf", "nan", "1099511627776", "100000",
            "99999999999999999999999", "0.5", "", "abc", "1_000", "-0"]


def _argv(rng: random.Random, case: Path) -> None:
    from netc.cli import build_parser

    options = {"check": ["--max-param-bytes"], "run": ["--seed", "--threads"],
               "bench": ["--seed", "--threads", "--seconds", "--iterations", "--warmup", "--batch"],
               "verify": ["--seeds", "--rtol", "--atol", "--seed", "--opset"], "compile": ["--seed", "--opset"],
               "batch": ["--workers", "--batch-size", "--shard-rows"],
               "export triton": ["--max-batch", "--instances"], "view": ["--port"], "graph": ["--depth"]}
    command = rng.choice(sorted(options))
    argv = [*command.split(), "m.net"] + (["d", "-o", "o"] if command == "batch" else
                                           ["-o", "o"] if command in ("export triton", "graph") else [])
    for _ in range(rng.randint(1, 3)):
        option = rng.choice(options[command])
        if (option == "--seconds" and "--iterations" in argv) or (option == "--iterations" and "--seconds" in argv):
            continue
        argv += [option, rng.choice(_NUMBERS)]
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse's usage message
            args = build_parser().parse_args(argv)
    except SystemExit as done:
        assert done.code == 2, f"argparse exit {done.code}"
        return
    for name in ("seed", "threads", "seconds", "seeds", "max_param_bytes", "workers", "batch_size", "shard_rows",
                 "max_batch", "instances", "port", "depth"):
        value = getattr(args, name, None)
        if value is not None:
            assert value == value and value not in (float("inf"), float("-inf")), f"{name}={value} accepted"
            assert value >= 0, f"{name}={value} accepted"
