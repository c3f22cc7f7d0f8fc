"""`netc weights import`: a PyTorch state dict (safetensors) onto a network's parameter
names, written as a weight file that `--weights` reads. The pairing is
`netc.compiler.torch_import`'s; this module only parses arguments, reports and writes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from netc.dsl.errors import NetcWeightsError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")


def add_parser(sub: argparse._SubParsersAction, network_options: Callable[[argparse.ArgumentParser], None]) -> None:
    weights = sub.add_parser("weights", help="convert trained weights (import from PyTorch)",
                             description="Work with weight files. `netc weights import` maps a PyTorch state "
                                         "dict onto a network's parameter names.")
    actions = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    p = actions.add_parser(
        "import", help="map a PyTorch state dict (.safetensors) onto a network's parameters",
        description="Read a PyTorch state dict saved as .safetensors (never a pickle), pair its modules "
                    "with the layers of the network in FILE (by order and shapes; a rules file where that "
                    "is not enough), convert layouts (dense weights transposed, batch-norm names, "
                    "recurrent gate order), and write a weight file for `--weights`. Prints which module "
                    "went to which layer and any tensors left over. docs/weights.md has the details.")
    p.add_argument("state", metavar="STATE.safetensors", help="the PyTorch state dict")
    p.add_argument("--net", required=True, metavar="FILE", help="the .net file of the network")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz|OUT.safetensors",
                   help="the weight file to write (atomically)")
    p.add_argument("--map", metavar="RULES", help="a rules file: NETC_LAYER = TORCH_MODULE per line")
    p.add_argument("--cast-weights", action="store_true",
                   help="convert tensors of another dtype (f64, f16) to the parameter's; refused without it")
    p.add_argument("--allow-unmatched", action="store_true",
                   help="write the file even when PyTorch tensors are left over (they are listed)")
    network_options(p)
    p.set_defaults(handler=cmd_weights_import)


def cmd_weights_import(args: argparse.Namespace) -> int:
    from netc import api
    from netc.cli import _limits, _settings
    from netc.compiler.params import read_weight_file
    from netc.compiler.torch_import import contiguous, import_state_dict, read_rules
    from netc.files import check_output_path

    state_path = Path(args.state)
    if state_path.suffix.lower() in PICKLE_SUFFIXES:
        raise NetcWeightsError(f"{state_path.name} is a pickle, which netc never loads (it can run code)", None,
                               ["save the state dict as safetensors: from safetensors.torch import save_file; "
                                "save_file(model.state_dict(), 'model.safetensors')"])
    if state_path.suffix.lower() != ".safetensors":
        raise NetcWeightsError(f"netc weights import reads .safetensors files; got {state_path.name}")
    out = Path(args.output)
    if out.suffix.lower() not in (".npz", ".safetensors"):
        raise NetcWeightsError(f"-o {out}: write .npz or .safetensors")
    check_output_path(out, state_path, args.net)
    limits = _limits(args)
    state = read_weight_file(state_path, limit=limits.max_param_bytes)  # sizes checked before reading
    program = api.load(args.net, allow_import_root=args.allow_import_root, limits=limits)
    graph = api.build_graph(program, args.network, _settings(args), limits)
    rules = read_rules(args.map) if args.map else None
    result = import_state_dict(state, graph, rules, cast=args.cast_weights)
    print(result.report())
    if result.unfilled:
        raise NetcWeightsError(f"{len(result.unfilled)} layer(s) of {graph.name} found no PyTorch module: "
                               + ", ".join(result.unfilled), None,
                               [f"{label}: {result.reasons.get(label, '')}" for label in result.unfilled[:3]]
                               + ["pair them in a rules file (--map RULES: NETC_LAYER = TORCH_MODULE per line)"])
    if result.unmatched_torch and not args.allow_unmatched:
        raise NetcWeightsError(f"{len(result.unmatched_torch)} PyTorch tensor(s) were not used: "
                               + ", ".join(result.unmatched_torch[:5])
                               + (" ..." if len(result.unmatched_torch) > 5 else ""), None,
                               ["pair them with --map RULES, or pass --allow-unmatched if the network leaves "
                                "them out on purpose (e.g. a classifier head you replaced)"])
    write_weights(out, contiguous(result.weights))
    print(f"wrote {out}: {len(result.weights)} tensors for network {graph.name}", file=sys.stdout)
    return 0


def write_weights(out: Path, weights: dict) -> None:
    """Write `.npz` or `.safetensors` atomically."""
    import zipfile

    import numpy as np

    from netc.files import atomic_path

    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".safetensors":
            from safetensors.numpy import save_file

            save_file(weights, str(tmp))
        else:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, array in weights.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, array, allow_pickle=False)
