"""IR-to-IR passes. Each module holds one pass and says what it requires and guarantees."""

from netc.compiler.passes.dead_code import eliminate_dead_code
from netc.compiler.passes.hoist import hoist_loop_invariants
from netc.compiler.passes.recognise_cells import recognise_cells

PIPELINE = (eliminate_dead_code, recognise_cells, hoist_loop_invariants)

__all__ = ["PIPELINE", "eliminate_dead_code", "hoist_loop_invariants", "recognise_cells"]
