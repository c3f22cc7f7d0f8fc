"""The scale-out commands: `netc batch` (batch inference over a dataset, locally or on Ray)
and `netc export triton` (a Triton Inference Server model repository)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netc.dsl.errors import NetcInputError, first_line


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the subcommands on the `netc` parser (called by `netc.cli.build_parser`)."""
    from netc import cli

    p = sub.add_parser(
        "batch", help="batch inference over a dataset of .npy/.npz/Parquet shards, locally or on Ray",
        description="Run MODEL over every row of DATA (a folder of .npy/.npz shards or Parquet files, or one "
                    "file) and write Parquet files to the folder OUT: a row_id column (the row's index in the "
                    "dataset) and one column per output, in input order. Rows lie along each input's batch "
                    "axis (the dim named N, or --batch-dim). Resumable: a second run with the same model and "
                    "data does only the units not yet written. Needs the 'batch' extra (pyarrow); "
                    "--engine ray needs the 'ray' extra.")
    p.add_argument("model", metavar="MODEL", help="a .onnx file or a .net file")
    p.add_argument("data", metavar="DATA", help="a dataset folder or file (.npy, .npz, .parquet)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the results folder (made if missing)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: a thread pool of sessions in this process (default); ray: Ray Data with an "
                        "actor pool, on a local instance or the cluster at --address")
    p.add_argument("--address", metavar="ADDR", help="a running Ray cluster (ray://host:10001 or auto)")
    p.add_argument("--workers", type=cli.worker_count, default=1, metavar="K",
                   help="sessions (local) or actors (ray) running at once (default 1)")
    p.add_argument("--batch-size", type=cli.int32_count, default=256, metavar="B",
                   help="rows per onnxruntime run (default 256)")
    p.add_argument("--shard-rows", type=cli.row_count, metavar="R",
                   help="rows per unit of work and output file (default: one unit per input file)")
    p.add_argument("--batch-dim", default="N", metavar="NAME", help="the symbolic dim that counts rows (default N)")
    p.add_argument("--cast-inputs", action="store_true",
                   help="convert data to the model's input dtypes (float64 to float32, ...) instead of refusing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    cli._model_options(p)
    p.set_defaults(handler=cmd_batch)

    export = sub.add_parser("export", help="export a model for a serving system (triton)",
                            description="Export MODEL in the layout a serving system loads.")
    targets = export.add_subparsers(dest="target", metavar="TARGET", required=True)
    p = targets.add_parser(
        "triton", help="a Triton Inference Server model repository",
        description="Write REPO/<name>/config.pbtxt and REPO/<name>/1/model.onnx for Triton's onnxruntime "
                    "backend. Inputs and outputs carry Triton dtypes and dims (-1 for a symbolic dim). "
                    "max_batch_size is set only when every input and output has the batch dim first; then "
                    "Triton may batch requests (--dynamic-batching).")
    p.add_argument("model", metavar="MODEL", help="a .onnx file or a .net file")
    p.add_argument("-o", "--output", required=True, metavar="REPO", help="the model repository folder")
    p.add_argument("--name", help="the model's name in the repository (default: MODEL's file stem)")
    p.add_argument("--max-batch", type=cli.int32_count, metavar="B",
                   help="max_batch_size (default 32 when the model batches along its first axis)")
    p.add_argument("--dynamic-batching", action="store_true", help="let Triton combine requests into batches")
    p.add_argument("--instances", type=cli.worker_count, default=1, metavar="K",
                   help="model instances Triton runs at once (default 1)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="instance kind (default cpu)")
    p.add_argument("--batch-dim", default="N", metavar="NAME", help="the symbolic dim that counts rows (default N)")
    p.add_argument("--opset", type=int, default=cli.DEFAULT_OPSET, metavar="K",
                   help=f"ONNX opset when MODEL is a .net file (default {cli.DEFAULT_OPSET})")
    cli._model_options(p)
    p.set_defaults(handler=cmd_export_triton)


def _model_bytes(args: argparse.Namespace) -> tuple[bytes, str]:
    """The model as serialized ONNX, compiling a .net file with the command's options."""
    data, name, _ = _compiled(args)
    return data, name


def _compiled(args: argparse.Namespace):
    """`_model_bytes`, and the IR graph when the model was compiled here (else None)."""
    from netc import api, cli

    path = Path(args.model)
    if path.suffix == ".net":
        options = cli._options(args)
        compiled = api.compile_file(cli._require_file(args.model), options)
        return compiled.model.SerializeToString(), compiled.graph.name, compiled.graph
    cli._require_file(args.model, "model")
    for flag, value in (("--network", args.network), ("--weights", args.weights),
                        ("--allow-import-root", args.allow_import_root)):
        if value:
            raise NetcInputError(f"{flag} applies to .net models; {args.model} is compiled already")
    if len(api.model_files(path)) > 1:
        raise NetcInputError(f"{path} keeps its weights in external data files; netc {args.command} takes "
                             "models under 2 GB in one file")
    return path.read_bytes(), path.stem, None


def _load(data: bytes, model: str):
    import onnx

    try:
        return onnx.load_model_from_string(data)
    except Exception as err:  # protobuf's DecodeError and friends
        raise NetcInputError(f"{model} is not an ONNX model: {first_line(err, 200)}") from None


def cmd_batch(args: argparse.Namespace) -> int:
    from netc.runtime import batch

    if args.address and args.engine != "ray":
        raise NetcInputError("--address applies to --engine ray")
    if args.settings and Path(args.model).suffix != ".net":
        raise NetcInputError("--set: the sizes of a .onnx model's dims come from the data")
    data, _, graph = _compiled(args)
    specs, output_shapes = batch.model_io(_load(data, args.model))
    plan = batch.make_plan(data, specs, output_shapes, args.data, args.output, args.batch_dim,
                           args.batch_size, args.shard_rows, args.cast_inputs)
    if graph is not None:
        from netc.runtime.input_values import value_rules

        plan.value_rules = value_rules(graph)
    result = batch.run_batch(data, plan, args.engine, args.workers, args.address, args.quiet)
    if not args.quiet:
        done = result.units - result.skipped
        startup = f" ({result.startup_seconds:.2f} s starting Ray)" if args.engine == "ray" else ""
        print(f"netc batch: {result.rows:,} rows in {result.units} units ({done} run now, {result.skipped} "
              f"done before) -> {result.out} in {result.seconds:.2f} s{startup}", file=sys.stderr)
    return 0


def cmd_export_triton(args: argparse.Namespace) -> int:
    import tempfile

    from netc import api
    from netc.runtime import triton

    data, _ = _model_bytes(args)
    model = _load(data, args.model)
    name = args.name or triton.model_name(Path(args.model))
    config = triton.make_config(model, name, args.max_batch, args.dynamic_batching, args.instances,
                                "KIND_GPU" if args.device == "gpu" else "KIND_CPU", args.batch_dim)
    repo = Path(args.output)
    if repo.exists() and not repo.is_dir():
        raise NetcInputError(f"-o {repo} exists and is not a folder")
    if Path(args.model).suffix == ".net":
        with tempfile.TemporaryDirectory() as tmp:
            model_path = Path(tmp) / "model.onnx"
            api.save_model(model, model_path)
            target = triton.export_repository(api.model_files(model_path), repo, config)
    else:
        target = triton.export_repository(api.model_files(args.model), repo, config)
    print(f"wrote {target}: config.pbtxt, 1/model.onnx; " + "; ".join(triton.describe(config)))
    return 0
