"""One unit of work (a flow run step, a backtest job) on its way through the lifecycle.

The model the machine drives. It carries what the invocation knows — the document as read, the
worker's configuration and ports, the time budget, the bound logger — and what the engine
records along the way: our claim, a failure, the last phase result. What the states produce
for each other travels as the payloads of the edges, typed per state, never as fields here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from engine.budget import TimeBudget
from engine.errors import Failure
from engine.log import EventLogger
from engine.ports import ABSENT, Path, Snapshot

# Covariant: a state written for any worker of a family (flow run steps) takes every worker's
# units, whose configuration and ports offer at least what it reads.
C = TypeVar("C", covariant=True)  # the worker's configuration
P = TypeVar("P", covariant=True)  # the worker's ports
D = TypeVar("D", covariant=True)  # the worker's parsed document


@dataclass(frozen=True)
class Claim:
    """Who owns the unit: its start (when it is a time at all) and the field values that
    identify the claim, which a finalize requires to still hold — never a newer claim.

    `owned` is True for our own claim, False for one found on the unit (recovery)."""

    started_at: datetime | None
    identity: Mapping[Path, Any]
    owned: bool
    token: Any = None  # the value written as the claim's start, for messages and logs

    @classmethod
    def found(cls, path: Path, value: Any, started_at: datetime | None) -> Claim:
        """The claim another invocation left on the unit, taken over by recovery: `value`,
        found at `path`, identifies it whatever its form (ABSENT included: then the field
        must still be absent), so a finalize never overwrites a newer claim; `started_at`
        is `value` read as a time, if it is one."""
        return cls(
            started_at=started_at,
            identity={path: value},
            owned=False,
            token=None if value is ABSENT else value,
        )


class Machined:
    """What the machine binds onto its model (annotations only, so the names stay free)."""

    state: str
    trigger: Callable[..., bool]


@dataclass(eq=False)
class Unit(Machined, Generic[C, P, D]):
    doc_id: str
    unit_id: str | None
    doc: D
    snapshot: Snapshot
    config: C
    ports: P
    budget: TimeBudget
    log: EventLogger
    now: Callable[[], datetime]
    lease_s: float | None = None  # set when a lease applies (stale-work scans)

    claim: Claim | None = None
    failure: Failure | None = None
    # The payload the current (or failing) state received: on a failure, the finalize reads
    # whatever the unit had reached (a model response, an attempt count) from it.
    last: Any = None
    noop: str | None = None  # why the unit ended untouched (UNCHANGED)
    ended: str | None = None  # an outcome beyond the state: claim_outcome_unknown, probe_failed
    stranded: bool = False
    # (from, trigger, to) of every transition taken, in order: the path through the table
    trail: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def owned(self) -> bool:
        return self.claim is not None and self.claim.owned
