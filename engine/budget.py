"""The invocation time budget (SPEC §12, CHART_EXPORT §8, BACKTEST §10).

Counted from the start of the invocation: no external call may start once less than the finalize
budget remains, and call timeouts are capped by what is left, so the unit can always be finalized.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.errors import Failure, Shared


class TimeBudget:
    def __init__(
        self,
        invocation_timeout_s: float,
        finalize_budget_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        started: float | None = None,
    ) -> None:
        self._monotonic = monotonic
        self._started = monotonic() if started is None else started
        self.invocation_timeout_s = invocation_timeout_s
        self.finalize_budget_s = finalize_budget_s

    def remaining(self) -> float:
        return self.invocation_timeout_s - (self._monotonic() - self._started)

    def spendable(self) -> float:
        """Seconds an external call may take without eating into the finalize budget."""
        return self.remaining() - self.finalize_budget_s

    def require(self, what: str, margin_s: float = 0.0) -> float:
        """Raises TIME_BUDGET_EXCEEDED unless `what` may start; returns the spendable seconds."""
        spendable = self.spendable()
        if spendable <= margin_s:
            # A stable message: it is stored on the step, so it carries no measured figures.
            raise Failure(
                Shared.TIME_BUDGET_EXCEEDED,
                f"not enough invocation time left to start {what} "
                f"(finalize budget {self.finalize_budget_s:g}s)",
            )
        return spendable

    def cap(self, timeout_s: float) -> float:
        return max(0.0, min(timeout_s, self.spendable()))
