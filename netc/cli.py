"""The `netc` command line. It only orchestrates: parse arguments, call the API and the
runtime, print. Exit codes: 0 success, 1 a mistake in the user's input (a located error
message), 2 bad usage, 3 a bug in netc (with the traceback), 130 interrupted."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netc import __version__, api, progress, scaleout_cli
from netc.boundary import translate
from netc.compiler.limits import DEFAULT_LIMITS, Limits
from netc.compiler.lowering import DEFAULT_OPSET, SUPPORTED_OPSETS
from netc.dsl.errors import NetcError, NetcInputError, NetcVerifyError, SourceCache, render
from netc.files import check_output_path
from netc.outputs import check_stdout
from netc.report import check_table, human_bytes, params_table

if TYPE_CHECKING:
    from netc.runtime.inputs import InputSpec
    from netc.runtime.session import Session

# The runtime (onnxruntime, the NumPy reference) is imported by the commands that run
# models, so `netc check` and `netc compile` start quickly.
PROVIDERS = ("cpu", "cuda")

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_NUMBER = re.compile(r"[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?")


# --------------------------------------------------------------------------- argument types
def parse_setting(text: str) -> tuple[str, Any]:
    """`NAME=VALUE`; the value is an int, a float, true/false, or else a string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=VALUE (for example --set N=8)")
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"'{name}' in '{text}' is not a name")
    raw = raw.strip()
    if not raw:
        raise argparse.ArgumentTypeError(f"'{text}' has no value after '='")
    return name, parse_value(raw)


def parse_value(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if _NUMBER.fullmatch(raw):
        for number in (int, float):
            try:
                return number(raw)
            except ValueError:
                pass
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of sizes, e.g. 1,8,32") from None
    if not batches or any(b < 1 for b in batches):
        raise argparse.ArgumentTypeError(f"'{text}': batch sizes are positive integers")
    return batches


def parse_bytes(text: str) -> int:
    """`8G`, `512M`, `1.5GiB` or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, flags=re.I)
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size such as 16G or 512M")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2).upper()]
    value = int(float(match.group(1)) * scale)
    if value < 1:  # 0 would otherwise silently mean "the default"
        raise argparse.ArgumentTypeError(f"'{text}': the limit must be at least 1 byte")
    return value


def _number_at_least(parse, minimum, noun: str, expected: str):
    """An argparse type: `parse(text)` that must be >= `minimum`."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {noun}") from None
        if not value >= minimum:  # also rejects NaN
            raise argparse.ArgumentTypeError(f"'{text}': expected {expected}")
        return value

    return convert


def _number_between(parse, minimum, maximum, noun: str, expected: str):
    """An argparse type: `parse(text)` within [minimum, maximum] (NaN and inf refused)."""
    at_least = _number_at_least(parse, minimum, noun, expected)

    def convert(text: str):
        value = at_least(text)
        if not value <= maximum:
            raise argparse.ArgumentTypeError(f"'{text}': expected {expected}")
        return value

    return convert


MAX_SEED = 2**63 - 1
# More intra-op threads than 4 per core only adds contention (and 10^5 threads take minutes to start).
MAX_THREADS = 4 * (os.cpu_count() or 1)
MAX_SECONDS = 24 * 3600.0
MAX_VERIFY_SEEDS = 1000
seed_int = _number_between(int, 0, MAX_SEED, "an integer", "a seed from 0 to 2**63-1")
thread_count = _number_between(int, 0, MAX_THREADS, "an integer",
                               f"0 (onnxruntime's choice) to {MAX_THREADS} (4 per CPU core)")
duration = _number_between(float, 1e-6, MAX_SECONDS, "a number", "a finite number of seconds, > 0 and <= 86400")
verify_seeds = _number_between(int, 1, MAX_VERIFY_SEEDS, "an integer", f"1 to {MAX_VERIFY_SEEDS} seeds")
positive_int = _number_at_least(int, 1, "an integer", "a positive integer")
non_negative_int = _number_at_least(int, 0, "an integer", "0 or more")
non_negative_float = _number_at_least(float, 0.0, "a number", "a number >= 0")
# Scale-out and tool options: a pool of 10^20 workers or a port of 99999 is a typo, refused
# here rather than by the thread pool, Triton or the socket layer.
MAX_WORKERS = 1024
worker_count = _number_between(int, 1, MAX_WORKERS, "an integer", f"1 to {MAX_WORKERS}")
int32_count = _number_between(int, 1, 2**31 - 1, "an integer", "a positive integer below 2**31")
row_count = _number_between(int, 1, 2**62, "an integer", "a positive integer up to 2**62")
port_number = _number_between(int, 1, 65535, "an integer", "a port from 1 to 65535")


# --------------------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netc", description="Compile declarative .net network descriptions to ONNX; run, benchmark "
                                 "and verify the result on onnxruntime.",
        epilog="exit codes: 0 success, 1 an error in the input (file:line:col: error: ...), 2 bad usage, "
               "3 internal error. `netc COMMAND --help` describes each command.")
    parser.add_argument("--version", action="version", version=f"netc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help="check shapes; print layers, parameters and FLOPs",
                       description="Check every network of FILE (or one, with --network) and print a table "
                                   "per network: each layer's output shape, parameter count and FLOPs, then "
                                   "the totals, and the least sizes of symbolic dims the network needs. FLOPs take "
                                   "symbolic dims at those least sizes (else 1) unless set with --set.")
    p.add_argument("file", metavar="FILE", help="a .net file")
    _network_options(p, all_networks=True)
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("compile", help="compile a network to an .onnx file",
                       description="Compile one network of FILE to ONNX. The model is written atomically "
                                   "(never half-written); without -o it goes to <FILE stem>.onnx in the "
                                   "current folder.")
    p.add_argument("file", metavar="FILE", help="a .net file")
    p.add_argument("-o", "--output", metavar="OUT.onnx",
                   help="where to write the model (default: <FILE stem>.onnx in the current folder)")
    p.add_argument("--quantize", choices=("dynamic", "static"),
                   help="write an int8 model (onnxruntime.quantization; see docs/quantization.md)")
    p.add_argument("--calibrate", metavar="DATA.npz",
                   help="--quantize static: calibration inputs by name, axis 0 the batch")
    p.add_argument("--quantize-all", action="store_true",
                   help="--quantize: quantize the output layers too (by default the layer that computes "
                        "each output, e.g. a classifier's last dense layer, stays f32)")
    _network_options(p)
    _weight_options(p)
    p.set_defaults(handler=cmd_compile)

    p = sub.add_parser("params", help="list parameters: names, shapes, dtypes, initialisers",
                       description="List the parameters of every network of FILE (or one, with --network): "
                                   "the names weight files use, shapes, dtypes, initialisers, trainable.")
    p.add_argument("file", metavar="FILE", help="a .net file")
    _network_options(p, all_networks=True)
    p.set_defaults(handler=cmd_params)

    p = sub.add_parser("run", help="run a model once on onnxruntime",
                       description="Run MODEL (.onnx, or a .net file compiled on the fly) once. Inputs come "
                                   "from .npy/.npz files or, with --random, are made up (symbolic dims from "
                                   "--set, else 1). Outputs are summarised, or saved as .npz with -o.")
    p.add_argument("model", metavar="MODEL", help="a .onnx file or a .net file")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="one input from a .npy file (repeatable)")
    p.add_argument("--inputs", metavar="FILE.npz", help="inputs from a .npz archive; keys are input names")
    p.add_argument("--random", action="store_true", help="make up the inputs not given, from --seed")
    p.add_argument("--cast-inputs", action="store_true",
                   help="cast inputs of another dtype within their kind (float64 -> float32, int32 -> int64); "
                        "without it they are refused")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save the outputs (atomically) instead of printing")
    _runtime_options(p)
    _model_options(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("bench", help="measure latency and throughput per batch size",
                       description="Time MODEL on onnxruntime with random inputs. The batch dim is N, else the "
                                   "first symbolic dim that is not a sequence axis (or --batch-dim); other "
                                   "symbolic dims take "
                                   "--set sizes, else 1. Reports p50/p90/p99 and mean latency and samples/s.")
    p.add_argument("model", metavar="MODEL", help="a .onnx file or a .net file")
    p.add_argument("--batch", type=parse_batches, metavar="B1,B2,...",
                   help="batch sizes, e.g. 1,8,32 (default: 1)")
    p.add_argument("--warmup", type=non_negative_int, default=5, metavar="W",
                   help="untimed runs per batch size (default 5)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=positive_int, metavar="I", help="timed runs per batch size")
    budget.add_argument("--seconds", type=duration, metavar="S",
                        help="time budget per batch size (default 1 s, at least 5 runs)")
    p.add_argument("--batch-dim", metavar="NAME",
                   help="the symbolic dim that --batch sizes (default: N, else the first symbolic dim that "
                        "is not a sequence axis such as T)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--plot", metavar="OUT.png|OUT.svg", help="also draw latency percentiles and throughput "
                                                              "against batch size (needs the 'plot' extra)")
    _runtime_options(p)
    _model_options(p)
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("verify", help="compare onnxruntime with the NumPy reference, op by op",
                       description="Compile one network of FILE, run it on onnxruntime and on the independent "
                                   "NumPy reference with random inputs (one draw per seed; symbolic dims take "
                                   "sizes 2 and 3, raised to the least sizes the network needs), and compare "
                                   "every output. On a mismatch the first op whose result diverges is reported "
                                   "at its source line, and the exit code is 1. Default tolerances (rtol/atol): f32 1e-4/1e-5, f64 "
                                   "1e-9/1e-11, f16 1e-2/1e-2; integers exact.")
    p.add_argument("file", metavar="FILE", help="a .net file")
    p.add_argument("--seeds", type=verify_seeds, default=3, metavar="K",
                   help=f"input draws (default 3, at most {MAX_VERIFY_SEEDS})")
    p.add_argument("--rtol", type=non_negative_float, help="relative tolerance for every float output")
    p.add_argument("--atol", type=non_negative_float, help="absolute tolerance for every float output")
    p.add_argument("--per-op", action="store_true", help="also print every op's comparison (first seed)")
    p.add_argument("--provider", choices=sorted(PROVIDERS), default="cpu",
                   help="onnxruntime provider (default cpu; cuda falls back to cpu, saying so)")
    p.add_argument("--against-f32", metavar="QUANT.onnx",
                   help="instead: compare QUANT.onnx (made by compile --quantize with the same --seed/--weights) "
                        "with FILE's f32 model: max abs/rel error, top-1 agreement (docs/quantization.md)")
    p.add_argument("--data", metavar="DATA.npz",
                   help="--against-f32: inputs by name, axis 0 the batch (default: random, batch 32, per seed)")
    _network_options(p)
    _weight_options(p)
    p.set_defaults(handler=cmd_verify)

    from netc import weights_cli  # `netc weights import`

    weights_cli.add_parser(sub, _network_options)
    from netc import tool_commands  # lsp, graph, view: their extras load inside the commands

    tool_commands.register(sub, _network_options, non_negative_int)
    scaleout_cli.add_commands(sub)  # batch, export triton
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr (shown only on a terminal)")
    for command in sub.choices.values():  # `netc compile -q` as well as `netc -q compile`
        own = next((a for a in command._actions if "-q" in a.option_strings), None)
        if own is not None:  # a command with its own -q (batch) keeps it; `netc -q batch` still counts
            own.default = argparse.SUPPRESS
            continue
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="no progress on stderr (shown only on a terminal)")
    return parser


def _network_options(p: argparse.ArgumentParser, all_networks: bool = False) -> None:
    p.add_argument("--network", "-n", metavar="NAME",
                   help="which network of the file" + (" (default: all)" if all_networks
                                                       else " (needed when the file holds several)"))
    p.add_argument("--set", action="append", default=[], type=parse_setting, metavar="NAME=VALUE", dest="settings",
                   help="a network parameter or a symbolic dim (repeatable); the value is an int, a float, "
                        "true/false or a string")
    p.add_argument("--allow-import-root", metavar="DIR", help="allow imports from anywhere below DIR")
    p.add_argument("--max-param-bytes", type=parse_bytes, metavar="SIZE",
                   help=f"refuse networks with more parameter bytes than this (default "
                        f"{human_bytes(DEFAULT_LIMITS.max_param_bytes)})")


def _weight_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="K",
                   help=f"ONNX opset ({SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}, default {DEFAULT_OPSET})")
    p.add_argument("--weights", metavar="W.npz|W.safetensors",
                   help="trained weights by parameter name (see `netc params`); default: initialise from --seed")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the parameter initialisers (default 0)")
    p.add_argument("--cast-weights", action="store_true",
                   help="convert weights of another float dtype (f64, f16) to the parameter's; refused without it")


def _runtime_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", choices=sorted(PROVIDERS), default="cpu",
                   help="onnxruntime provider (default cpu; cuda falls back to cpu, saying so)")
    p.add_argument("--threads", type=thread_count, default=0, metavar="K",
                   help=f"intra-op threads (default: onnxruntime's choice; at most {MAX_THREADS}, 4 per core)")


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], type=parse_setting, metavar="NAME=VALUE", dest="settings",
                   help="size of a symbolic dim of a .onnx model (default 1); for a .net model, any network "
                        "parameter or dim, fixed at compile time (repeatable)")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed of random inputs and of .net initialisers (default 0)")
    group = p.add_argument_group("when MODEL is a .net file")
    group.add_argument("--network", "-n", metavar="NAME", help="which network of the file")
    group.add_argument("--weights", metavar="W.npz|W.safetensors", help="trained weights by parameter name")
    group.add_argument("--cast-weights", action="store_true",
                       help="convert weights of another float dtype to the parameter's; refused without it")
    group.add_argument("--allow-import-root", metavar="DIR", help="allow imports from anywhere below DIR")


# --------------------------------------------------------------------------- helpers
def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name, value in args.settings:
        if name in settings and settings[name] != value:
            raise NetcInputError(f"--set {name} is given twice ({settings[name]!r} and {value!r})")
        settings[name] = value
    return settings


def _limits(args: argparse.Namespace) -> Limits:
    max_bytes = getattr(args, "max_param_bytes", None)
    return Limits(max_param_bytes=max_bytes) if max_bytes else DEFAULT_LIMITS


def _options(args: argparse.Namespace) -> api.CompileOptions:
    return api.CompileOptions(network=args.network, settings=_settings(args),
                              opset=getattr(args, "opset", DEFAULT_OPSET), seed=getattr(args, "seed", 0),
                              weights=getattr(args, "weights", None), allow_import_root=args.allow_import_root,
                              limits=_limits(args), cast_weights=getattr(args, "cast_weights", False))


def _require_file(path: str, what: str = "file") -> Path:
    p = Path(path)
    if not p.is_file():
        raise NetcInputError(f"{what} not found: {path}" if not p.exists() else f"{path} is not a file")
    return p


def _graphs(args: argparse.Namespace):
    path = _require_file(args.file)
    options = _options(args)
    program = api.load(path, allow_import_root=options.allow_import_root, limits=options.limits)
    names = [args.network] if args.network else list(program.networks) or [None]
    return [api.build_graph(program, name, options.settings, options.limits) for name in names]


def _open(args: argparse.Namespace) -> tuple[Session, list[InputSpec], dict[str, int]]:
    """Session, input specs, and the sizes of symbolic dims (for a .onnx model)."""
    is_net = Path(args.model).suffix == ".net"
    if not is_net:
        for flag, value in (("--network", args.network), ("--weights", args.weights),
                            ("--allow-import-root", args.allow_import_root)):
            if value:
                raise NetcInputError(f"{flag} applies to .net models; {args.model} is compiled already")
    options = _options(args) if is_net else None
    session, specs = api.open_model(args.model, args.provider, args.threads, options)
    sizes: dict[str, int] = {}
    if not is_net:  # a .net model took --set at compile time
        known = [s for spec in specs for s in spec.symbols()]
        for name, value in _settings(args).items():
            if name not in known:
                raise NetcInputError(f"--set {name}: the model has no symbolic dim named '{name}'", None,
                                     ["symbolic dims: " + (", ".join(dict.fromkeys(known)) or "none")])
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NetcInputError(f"--set {name}={value}: a dim size is a positive integer")
            sizes[name] = value
    return session, specs, sizes


# --------------------------------------------------------------------------- commands
def cmd_check(args: argparse.Namespace) -> int:
    tables = [check_table(graph) for graph in _graphs(args)]
    print("\n\n".join(tables))
    return EXIT_OK


def cmd_params(args: argparse.Namespace) -> int:
    print("\n\n".join(params_table(graph) for graph in _graphs(args)))
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    source = _require_file(args.file)
    out = Path(args.output) if args.output else Path(source.stem + ".onnx")
    check_output_path(args.output or out, source, args.weights)  # before the work: a mistake costs nothing
    start = time.perf_counter()
    if args.quantize or args.calibrate or args.quantize_all:
        from netc.int8 import compile_quantized

        graph = compile_quantized(source, out, _options(args), args.quantize, args.calibrate, args.quantize_all)
    else:
        graph = api.compile_to_file(source, out, _options(args))
    ms = (time.perf_counter() - start) * 1e3
    total = sum(p.size for p in graph.params)
    trainable = sum(p.size for p in graph.params if p.trainable)
    # With the data file of a model over 2 GB (finding it reads the model: only then).
    big = sum(p.size * p.dtype.numpy.itemsize for p in graph.params) >= api.EXTERNAL_DATA_THRESHOLD
    size = sum(f.stat().st_size for f in api.model_files(out)) if big else out.stat().st_size
    print(f"wrote {out}: network {graph.name}, {total:,} parameters ({trainable:,} trainable), "
          f"{human_bytes(size)}, opset {args.opset}, {ms:.0f} ms")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from netc.runtime.inputs import check_inputs, random_inputs, read_inputs
    from netc.runtime.run import run_session, save_outputs, summarise

    sources = [args.model, args.inputs, *(pair.partition("=")[2] for pair in args.input)]
    if args.output:
        check_output_path(args.output, *sources)
    session, specs, sizes = _open(args)
    given = read_inputs(args.input, args.inputs, specs)  # sizes checked against the model before reading
    if args.cast_inputs:
        from netc.runtime.casting import cast_inputs

        given = cast_inputs(specs, given)
    if args.random:
        feeds = random_inputs(specs, args.seed, sizes, default=1, given=given, minima=session.min_sizes)
        made = [s for s in specs if s.name not in given]
        if made:
            shapes = ", ".join(f"{s.name}: {s.type_name}{list(feeds[s.name].shape)}" for s in made)
            print(f"random inputs (seed {args.seed}): {shapes}", file=sys.stderr)
    else:
        feeds = given
        check_inputs(specs, feeds)
    outputs = run_session(session, feeds, specs)
    if args.output:
        out = save_outputs(args.output, outputs, *sources)
        print(f"wrote {out}: {', '.join(outputs)}")
    else:
        print(summarise(outputs))
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from netc.runtime import bench as bench_mod

    if args.plot:
        from netc.bench_plot import check_plot_path, plot_bench

        check_plot_path(args.plot, args.model)
    session, specs, sizes = _open(args)
    results = bench_mod.bench(session, specs, args.batch, args.warmup, args.iterations, args.seconds, sizes,
                              args.seed, args.batch_dim)
    batch_name = bench_mod.batch_dim(specs, args.batch_dim)
    for warning in bench_mod.warnings_for(results):
        print(f"netc: warning: {warning}", file=sys.stderr)
    if args.json:
        print(bench_mod.to_json(results, str(args.model), batch_name))
    else:
        print(bench_mod.format_table(results, batch_name))
    if args.plot:
        print(f"wrote {plot_bench(results, batch_name, Path(args.model).name, args.plot)}", file=sys.stderr)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from netc.runtime.verify import format_report

    path = _require_file(args.file)
    if args.against_f32 or args.data:
        from netc.int8 import verify_against_f32

        return verify_against_f32(path, _options(args), args.against_f32, args.data, args.seeds)
    report = api.verify_file(path, _options(args), args.seeds, args.rtol, args.atol, args.per_op, args.provider)
    print(format_report(report))
    if report.ok:
        return EXIT_OK
    if report.divergence is not None:
        raise report.divergence.error()
    raise NetcVerifyError("outputs disagree, yet no single op's result diverges beyond tolerance: "
                          "the error builds up over many ops", None,
                          ["loosen --rtol/--atol if the drift is acceptable for this network"])


# --------------------------------------------------------------------------- entry point
def run() -> int:
    """The `netc` command and `python -m netc`: `main` in a process of its own. Everything
    imported so far (NumPy, onnx, the compiler) lives until the process ends, so it is moved
    out of the garbage collector's sight (`gc.freeze`): a full collection during a compile
    would otherwise walk it all again (about 15 ms of ResNet-50's cold compile)."""
    gc.freeze()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, and usage errors (exit 2)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    try:
        check_stdout()
        with progress.reporting(getattr(args, "quiet", False)):  # stages on stderr, if a terminal
            code = args.handler(args)
        sys.stdout.flush()  # a full or closed stdout is an error now, not at exit
        return code
    except NetcError as err:
        return _report(err)
    except KeyboardInterrupt:
        print("netc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `netc check big.net | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as err:
        translated = translate(err)  # the OS, NumPy or onnxruntime refusing what the user gave
        if translated is not None:
            return _report(translated)
        print("netc: internal error, please report\n" + traceback.format_exc(), file=sys.stderr, end="")
        return EXIT_INTERNAL


def _report(err: NetcError) -> int:
    with contextlib.suppress(OSError, AttributeError):  # stdout may be full, or closed (None)
        sys.stdout.flush()
    print(render(err, SourceCache()), file=sys.stderr)
    return EXIT_INPUT
