"""Documentation stays in step with the registry and the examples."""

from __future__ import annotations

import importlib.util

from netc.compiler.ops import REGISTRY
from tests.conftest import EXAMPLES, ROOT


def _gen():
    spec = importlib.util.spec_from_file_location("gen_op_docs", ROOT / "tools" / "gen_op_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ops_md_is_generated_from_the_registry():
    assert (ROOT / "docs" / "ops.md").read_text() == _gen().render(), \
        "docs/ops.md is stale: run python tools/gen_op_docs.py"


def test_every_user_facing_op_is_used_in_an_example():
    import re

    text = "\n".join(p.read_text() for p in EXAMPLES.rglob("*.net"))
    missing = [name for name, op in REGISTRY.ops.items()
               if not op.internal and not re.search(rf"\b{name}\b", text)]
    # Arithmetic is written with operators in examples (a + b, x @ w).
    operators = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@", "neg": "-",
                 "equal": "==", "not_equal": "!=", "less": "<", "less_equal": "<=", "greater": ">",
                 "greater_equal": ">=", "logical_and": "and", "logical_or": "or", "logical_not": "not",
                 "mod": "%", "floordiv": "//"}
    missing = [m for m in missing if m not in operators]
    assert not missing, f"ops with no example in examples/: {missing}"
