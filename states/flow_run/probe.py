"""RUNNING.probe: is the step's artifact already written? (SPEC §5, CHART_EXPORT §12)

After our own claim, an artifact an earlier attempt wrote is adopted before anything is paid
for. For a step another invocation claimed (split brain, stale-step recovery), the artifact
means the work was done and only the finalize was lost; without it, the step is left alone
unless its lease has run out. The worker says where its artifact lives.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from engine.clock import parse_rfc3339, rfc3339
from engine.errors import Failure
from engine.gates import lease_expired
from engine.lifecycle import Next
from engine.ports import at
from engine.runner import LEFT_ALONE
from engine.unit import Claim
from states.flow_run.claim import STARTED_AT, step_path
from states.flow_run.source import StepUnit, step_of

STEP_LEASE_EXPIRED = "STEP_LEASE_EXPIRED"
ALREADY_RUNNING = "already_running"


def probe(
    unit: StepUnit, artifact: str | None, exists: Callable[[str], bool], artifact_name: str
) -> Next:
    """`artifact` is where the step's artifact would be, None when the step's inputs name no
    valid place (then there can be none). `exists` may raise: the state's exit decides."""
    if unit.claim is None:
        adopt_claim(unit)
    if artifact is not None:
        if unit.owned:
            unit.budget.require(f"gcs read ({artifact_name})")
        if exists(artifact):
            return "found", artifact
    if unit.owned:
        return "absent", None
    assert unit.claim is not None
    if unit.lease_s is not None and lease_expired(unit.claim.started_at, unit.lease_s, unit.now()):
        since = rfc3339(unit.claim.started_at) if unit.claim.started_at else "an unknown time"
        unit.failure = Failure(
            STEP_LEASE_EXPIRED,
            f"step RUNNING since {since} without a {artifact_name}: "
            f"lease of {unit.lease_s:g}s expired",
        )
        unit.log.warning(
            "step_lease_expired",
            claimStartedAt=rfc3339(unit.claim.started_at) if unit.claim.started_at else None,
            leaseSeconds=unit.lease_s,
        )
        return "expired", None
    unit.noop = ALREADY_RUNNING
    unit.ended = LEFT_ALONE
    return "alive", None


def adopt_claim(unit: StepUnit) -> None:
    """Takes over the claim found on the step: its startedAt identifies it (whatever its form,
    even absent, so a finalize never overwrites a newer claim) and, when it is a timestamp,
    times it. Foreign documents may hold anything here; nothing in them may raise."""
    started: Any = at({"outputs": step_of(unit).outputs}, STARTED_AT)
    unit.claim = Claim.found(step_path(unit, *STARTED_AT), started, claim_time(started))


def claim_time(value: Any) -> datetime | None:
    """A claim's start as an aware UTC datetime; a time without an offset is taken as UTC
    (Firestore and our claims are UTC); anything else is no time at all."""
    moment = parse_rfc3339(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
