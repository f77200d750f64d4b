"""Which Chart-IMG account an attempt uses, and what the instance remembers about accounts
(CHART_EXPORT §7, §8, §9).

The candidate order is a pure function of the run, step and template, so instances and
requests spread over the accounts while a retried step tries them in the same order. The
`AccountBook` is the instance's memory, shared by the concurrent requests of a step and by later
invocations: accounts exhausted for the UTC day (by the counter or by the provider, whether or
not the usage document could record it), cool-downs after `Retry-After`, and the start of the
next attempt each account may make (per-account spacing, 1 / rps).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime

from states.chart_export.chart_api import Account


def start_index(run_id: str, step_id: str, template_id: str, count: int) -> int:
    """§7: `int.from_bytes(sha256(f"{runId}/{stepId}/{chartTemplateId}")[:8], "big") % N`."""
    digest = hashlib.sha256(f"{run_id}/{step_id}/{template_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def candidates(
    accounts: Sequence[Account],
    start: int,
    attempt: int,
    skipped: Collection[str],
    cooling: Collection[str],
) -> list[Account]:
    """The secret's order rotated to `start + attempt` (attempt k starts k places further);
    `skipped` accounts (exhausted, or unusable in this invocation) left out, accounts in
    cool-down moved to the end in their rotated order."""
    count = len(accounts)
    rotated = [accounts[(start + attempt + i) % count] for i in range(count)]
    usable = [a for a in rotated if a.id not in skipped]
    return [a for a in usable if a.id not in cooling] + [a for a in usable if a.id in cooling]


class AccountBook:
    """The instance's memory of accounts; every method is safe to call from request threads."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._exhausted: dict[str, date] = {}
        self._cool_until: dict[str | None, float] = {}
        self._next_start: dict[str, float] = {}

    # --- exhausted for the UTC day

    def exhaust(self, account_id: str, now: datetime) -> None:
        with self._lock:
            self._exhausted[account_id] = _utc_day(now)

    def exhausted(self, account_id: str, now: datetime) -> bool:
        with self._lock:
            return self._exhausted.get(account_id) == _utc_day(now)

    # --- cool-downs (`Retry-After`); None names "the provider" when no account is used (mock)

    def cool(self, account_id: str | None, seconds: float) -> None:
        with self._lock:
            until = self._monotonic() + seconds
            self._cool_until[account_id] = max(until, self._cool_until.get(account_id, 0.0))

    def cooling(self, account_id: str | None) -> float:
        """Seconds left in the account's cool-down (0: none)."""
        with self._lock:
            return max(0.0, self._cool_until.get(account_id, 0.0) - self._monotonic())

    # --- per-account spacing of attempt starts (§9)

    def claim(self, account_ids: Sequence[str], interval_s: float) -> tuple[str, float]:
        """Takes a start slot on the first of `account_ids` that is free now, else on the one
        free soonest (ties: the earlier in the list); returns it and how long to wait for the
        slot. Under the lock, so concurrent requests never start within `interval_s` on one
        account, and spread over free accounts rather than queueing behind one."""
        assert account_ids, "claim needs a candidate"
        with self._lock:
            now = self._monotonic()
            waits = [max(0.0, self._next_start.get(i, 0.0) - now) for i in account_ids]
            best = min(range(len(account_ids)), key=lambda index: (waits[index], index))
            chosen = account_ids[best]
            self._next_start[chosen] = now + waits[best] + interval_s
            return chosen, waits[best]


def _utc_day(now: datetime) -> date:
    from datetime import UTC

    return now.astimezone(UTC).date()
