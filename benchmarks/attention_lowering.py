"""The three lowerings of `multihead_attention`, side by side on onnxruntime CPU: the measurement
behind `lowering="auto"` (compiler/ops/mha_choice.py).

    python benchmarks/attention_lowering.py [--T 128 512] [--N 1] [--d 512] [--heads 8]
        [--layer mha|encoder] [--threads 2] [--rounds 30] [--json out.json]

One self-attention layer (`--layer mha`, default) or one post-norm encoder layer
(`--layer encoder`, std/transformer.net) at d_model=d, h heads, N examples, T steps, with
lowering="decomposed" (MatMul/Softmax), "onnx" (ONNX Attention, opset 23) and "contrib"
(com.microsoft.MultiHeadAttention). The outputs must agree (rtol 1e-4, atol 1e-5) before
timing. The three sessions take turns on the harness's shared pool (benchmarks/harness.py);
rows: medians, the ratios form / decomposed (paired, bootstrap 95% intervals), and the
form `lowering="auto"` picks against the fastest form (target: within 5%, <= 1.05).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from harness import Bench, add_common_arguments, interleave_sessions, ort_session, setup_threads

import netc
from netc.compiler.lowering import lower_graph

FORMS = {"decomposed": 21, "onnx": 23, "contrib": 21}


def source(args: argparse.Namespace, T: int, form: str) -> str:
    if args.layer == "mha":
        body = f'multihead_attention(x, heads={args.heads}, lowering="{form}")'
        head = ""
    else:
        head = 'import "std/transformer.net"\n'
        body = f"encoder_layer(x, {args.heads}, {4 * args.d})"  # its attention's lowering: compile_form
    return f"{head}network B {{\n  input x: f32[{T}, {args.N}, {args.d}]\n  output y = {body}\n}}\n"


def compile_form(args: argparse.Namespace, T: int, form: str):
    text = source(args, T, form)
    if args.layer == "encoder":  # force the form inside the library block through a copy of it
        lib = (Path(netc.__file__).resolve().parent.parent / "compiler" / "std" / "transformer.net").read_text()
        lib = lib.replace('name="self_attn")', f'lowering="{form}", name="self_attn")')
        text = lib + text.replace('import "std/transformer.net"\n', "")
    return netc.compile_source(text, opset=FORMS.get(form, 21))


def auto_pick(args: argparse.Namespace, T: int) -> str:
    """The form `lowering="auto"` takes at this shape, read off the lowered graph."""
    ops = {n.op_type for n in compile_form(args, T, "auto").model.graph.node}
    return "contrib" if "MultiHeadAttention" in ops else "onnx" if "Attention" in ops else "decomposed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layer", choices=("mha", "encoder"), default="mha")
    add_common_arguments(parser, rounds=30)
    args = parser.parse_args()
    setup_threads(args.threads)
    bench = Bench("attention_lowering")
    for T in args.T:
        case = f"{args.layer} T={T} N={args.N} d={args.d} h={args.heads}"
        compiled = {form: compile_form(args, T, form) for form in FORMS}
        params = compiled["decomposed"].params
        x = np.random.default_rng(0).standard_normal((T, args.N, args.d)).astype(np.float32)
        sessions = {form: ort_session(lower_graph(c.graph, params, FORMS[form])) for form, c in compiled.items()}
        outs = {form: s.run(None, {"x": x})[0] for form, s in sessions.items()}
        for form, out in outs.items():
            np.testing.assert_allclose(out, outs["decomposed"], rtol=1e-4, atol=1e-5, err_msg=form)
        times = interleave_sessions(sessions, {"x": x}, args.rounds, args.warmup)
        for form in FORMS:
            bench.time_row(case, f"{form} ms", times[form])
        for form in ("onnx", "contrib"):
            bench.ratio_row(case, f"{form} / decomposed", times[form], times["decomposed"])
        picked = auto_pick(args, T)
        fastest = min(FORMS, key=lambda f: np.median(times[f]))
        bench.ratio_row(case, f"auto ({picked}) / fastest ({fastest})", times[picked], times[fastest], target=1.05)
    bench.finish(args.json)


if __name__ == "__main__":
    main()
