"""One budget for compile-time evaluation across a whole file: loop iterations, and list
items copied (`+`, `*`, slices, `range`) or compared (`==` on lists). Limits on single
values (a list's length) do not bound the total: a loop that copies a 10^6-item list
10^5 times, or compares ever-doubling lists, stays within each and runs for hours. The
budget is shared by every network of the file, so K networks cannot take K times as long.
"""

from __future__ import annotations

from netc.compiler.limits import Limits
from netc.compiler.values import count_text
from netc.dsl.errors import NetcLimitError, Span


class WorkBudget:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.iterations = 0
        self.items = 0

    def iteration(self, span: Span | None) -> None:
        """One pass of a compile-time `for`."""
        self.iterations += 1
        if self.iterations > self.limits.max_loop_iterations:
            raise NetcLimitError(f"compile-time loops ran more than {self.limits.max_loop_iterations} iterations "
                                 "(counted over the whole file)", span)

    def items_touched(self, n: int, construct: str, span: Span | None) -> None:
        """`n` list items copied or compared by `construct` (`list '+'`, `'==' on lists`)."""
        self.items += max(n, 0)
        if self.items > self.limits.max_work_items:
            raise NetcLimitError(f"compile-time work is over the budget of {count_text(self.limits.max_work_items)} "
                                 f"list items copied or compared (counted over the whole file), here in {construct}",
                                 span, ["a loop that copies or compares growing lists runs for hours; build the "
                                        "list once, or loop over range() instead"])
