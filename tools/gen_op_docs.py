"""Generate docs/ops.md from the op registry and the intrinsics.

    python tools/gen_op_docs.py           # rewrite docs/ops.md
    python tools/gen_op_docs.py --check   # exit 1 if docs/ops.md is stale (used by the tests)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS_MD = ROOT / "docs" / "ops.md"


def render() -> str:
    from netc.compiler.elaborate import signature_text
    from netc.compiler.intrinsics import INTRINSICS
    from netc.compiler.ops import REGISTRY
    from netc.compiler.values import Intrinsic

    lines = [
        "# Layers and ops",
        "",
        "Generated from the op registry by `python tools/gen_op_docs.py`; do not edit by hand.",
        "Each op has a NumPy reference, an ONNX lowering and parity tests (`tests/test_op_parity.py`).",
        "The first argument of a layer is its input, so `x -> f(a)` means `f(x, a)`.",
        "",
    ]
    by_module: dict[str, list] = {}
    for _name, opdef in sorted(REGISTRY.ops.items()):
        if opdef.internal:
            continue
        family = type(opdef).__module__.rsplit(".", 1)[-1]
        by_module.setdefault(family, []).append(opdef)
    for family in sorted(by_module):
        lines += [f"## {family}", "", "| op | signature | meaning |", "|---|---|---|"]
        for opdef in by_module[family]:
            sig = signature_text(opdef.name, opdef.signature).replace("|", "\\|")
            doc = " ".join(opdef.doc.split()).replace("|", "\\|")
            lines.append(f"| `{opdef.name}` | `{sig}` | {doc} |")
        lines.append("")
    lines += ["## Compile-time functions", "", "| function | signature | meaning |", "|---|---|---|"]
    for name, value in sorted(INTRINSICS.items()):
        if isinstance(value, Intrinsic):
            sig = signature_text(name, value.signature).replace("|", "\\|")
            lines.append(f"| `{name}` | `{sig}` | {value.doc} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OPS_MD.read_text() if OPS_MD.exists() else ""
        if current != text:
            print("docs/ops.md is stale: run python tools/gen_op_docs.py", file=sys.stderr)
            return 1
        return 0
    OPS_MD.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
