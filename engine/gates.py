"""Claims and finalizes: status-gated writes with preconditions, the same for every worker.

A unit moves READY → RUNNING → SUCCEEDED | FAILED only through a write whose gate re-checks
the status (and, for a finalize, the claim's identity) on every re-read, so at most one
invocation ever owns a unit and nothing final is ever rewritten. What the patches hold is the
worker's; how they are written, and what an ambiguous outcome means (COMMON.md §3), is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from engine.errors import StoreUnavailable, WriteOutcomeUnknown
from engine.ports import ABSENT, DocumentStore, Gate, GuardedWrite, JsonObject, Path, at, holds
from engine.unit import Claim, Unit

CLAIM_TIMEOUT_S = 10.0
FINALIZE_TIMEOUT_S = 15.0


class HasStore(Protocol):
    @property
    def store(self) -> DocumentStore: ...


def status_gate(
    status: Path, accepted: frozenset[str], identity: Mapping[Path, Any] | None = None
) -> Gate:
    """Lets a write go while the unit's status is one of `accepted` (a vocabulary may have
    aliases) and the claim's identity fields still hold; otherwise says what it found."""

    def check(data: JsonObject) -> str | None:
        found = at(data, status)
        if found not in accepted:
            return str(None if found is ABSENT else found)
        if identity and not holds(data, identity):
            return f"{found} (another claim)"
        return None

    return check


@dataclass(frozen=True)
class Claimed:
    claim: Claim


@dataclass(frozen=True)
class Lost:
    """Not ours: another status was found, or every attempt lost a race (`observed` None)."""

    observed: str | None


@dataclass(frozen=True)
class Unknown:
    """The claim may be on the unit: write nothing more; lease recovery finishes it.

    `claim` has already logged `claim_outcome_unknown` and ended the unit's invocation."""


@dataclass(frozen=True)
class Unavailable:
    """Nothing of ours landed: the store failed, or every write erred and re-reads proved it."""

    message: str


ClaimResult = Claimed | Lost | Unknown | Unavailable


def claim(
    unit: Unit[Any, HasStore, Any],
    collection: str,
    patch: Mapping[Path, Any],
    gate: Gate,
    claim: Claim,
) -> ClaimResult:
    try:
        result = unit.ports.store.update(collection, unit.doc_id, patch, gate, CLAIM_TIMEOUT_S)
    except WriteOutcomeUnknown:
        # COMMON.md §3: an ambiguous claim is never taken for "not claimed". The same for every
        # worker: say so once, write nothing more and end; the deployed lease recovery finishes
        # the unit if the claim landed.
        unit.log.error(
            "claim_outcome_unknown", claimStartedAt=claim.token, reason="firestore_error"
        )
        unit.ended = "claim_outcome_unknown"
        return Unknown()
    except StoreUnavailable as exc:
        return Unavailable(exc.message)
    if result.committed:
        unit.claim = claim
        return Claimed(claim)
    if result.failed:
        return Unavailable("firestore claim write failed")
    return Lost(result.observed)


def finalize(
    unit: Unit[Any, HasStore, Any], collection: str, patch: Mapping[Path, Any], gate: Gate
) -> GuardedWrite:
    """Raises StoreUnavailable when the outcome cannot be recorded: the unit is stranded."""
    return unit.ports.store.update(collection, unit.doc_id, patch, gate, FINALIZE_TIMEOUT_S)


def lease_expired(started_at: datetime | None, lease_s: float, now: datetime) -> bool:
    """A claim with no readable start is expired: every claim a worker makes records one."""
    if started_at is None:
        return True
    return (now - started_at).total_seconds() > lease_s
