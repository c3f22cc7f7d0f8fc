"""The three lowerings of `multihead_attention`, side by side on onnxruntime CPU: the measurement
behind `lowering="auto"` (compiler/ops/mha_choice.py).

    python benchmarks/attention_lowering.py [--threads 2] [--repeats 30] [--T 128 512]
        [--N 1] [--d 512] [--heads 8] [--layer mha|encoder]

One self-attention layer (`--layer mha`, default) or one post-norm encoder layer
(`--layer encoder`, std/transformer.net) at d_model=d, h heads, N examples, T steps, with
lowering="decomposed" (MatMul/Softmax), "onnx" (ONNX Attention, opset 23) and "contrib"
(com.microsoft.MultiHeadAttention). The outputs must agree (rtol 1e-4, atol 1e-5) before
timing; rounds are interleaved (benchmarks/timing.py); prints medians, p90 and the ratios
to the decomposed form with bootstrap 95% intervals.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import netc
from benchmarks.timing import Ratio, ort_session, time_interleaved
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
    return netc.compile_source(text, opset=FORMS[form])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--T", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layer", choices=("mha", "encoder"), default="mha")
    args = parser.parse_args()
    print(f"# {' '.join(sys.argv)}")
    print(f"# layer={args.layer} N={args.N} d={args.d} heads={args.heads} threads={args.threads} "
          f"repeats={args.repeats}; ms; ratio = form / decomposed, median of per-round ratios [95% CI]")
    for T in args.T:
        compiled = {form: compile_form(args, T, form) for form in FORMS}
        params = compiled["decomposed"].params
        x = np.random.default_rng(0).standard_normal((T, args.N, args.d)).astype(np.float32)
        sessions = {form: ort_session(lower_graph(c.graph, params, FORMS[form]), args.threads)
                    for form, c in compiled.items()}
        outs = {form: s.run(None, {"x": x})[0] for form, s in sessions.items()}
        for form, out in outs.items():
            np.testing.assert_allclose(out, outs["decomposed"], rtol=1e-4, atol=1e-5, err_msg=form)
        stats = time_interleaved({f: (lambda s=s, x=x: s.run(None, {"x": x})) for f, s in sessions.items()},
                                 args.repeats)
        for form, st in stats.items():
            ratio = Ratio.of(st, stats["decomposed"])
            print(f"T={T:4d} {form:10s} median {st.median:8.2f} ms  p90 {st.p90:8.2f} ms  ratio {ratio}")


if __name__ == "__main__":
    main()
