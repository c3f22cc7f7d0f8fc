"""IR-to-IR passes. Each module holds one pass and says what it requires and guarantees."""

from netc.compiler.passes.dead_code import eliminate_dead_code

PIPELINE = (eliminate_dead_code,)

__all__ = ["PIPELINE", "eliminate_dead_code"]
