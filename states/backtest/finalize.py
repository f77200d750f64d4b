"""RUNNING.finalize: `running → completed | failed` (BACKTEST §5), gated on the claim.

Always attempted once the job is ours (or found running and decided: recovered, or its lease
over). The gate requires `running` and the claim's own `startedAt`, so a job already final is
never rewritten and a newer claim (a re-queue and a new run) is never finalized by an old one;
a lost finalize writes nothing (`finalize_conflict`). A job completes only beside its result:
reached from a created or reused result, or it fails with the failure recorded on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine import gates
from engine.clock import span_ms
from engine.errors import Failure, StoreUnavailable
from engine.lifecycle import Next
from engine.ports import Gate, GuardedWrite, Path
from states.backtest.errors import NoOp
from states.backtest.job import COMPLETED, FAILED, RUNNING, STATUS, spellings
from states.backtest.phases import Stored
from states.backtest.unit import JobUnit


@dataclass(frozen=True)
class Finalized:
    completed: bool


def succeeded(result: Finalized) -> bool:
    """Guard: the job was finalized `completed`."""
    return result.completed


def failed_fields(failure: Failure, now: datetime) -> dict[Path, Any]:
    """A failed job's fields (§5), from `running` here or from `queued` (QUEUED.reject)."""
    return {
        STATUS: FAILED,
        ("completedAt",): now,
        ("errorCode",): failure.code,
        ("errorMessage",): failure.message,
    }


def write_final(unit: JobUnit, patch: dict[Path, Any], gate: Gate) -> GuardedWrite:
    """The final write of a job; logs `job_finalize_failed` and re-raises when the store fails
    (the state's error exit decides what follows)."""
    try:
        return gates.finalize(unit, unit.config.jobs_collection, patch, gate)
    except StoreUnavailable:
        unit.log.error(
            "job_finalize_failed", reason="firestore_error", intendedStatus=patch[STATUS]
        )
        raise


def enter(unit: JobUnit, stored: Stored | None) -> Next:
    now = unit.now()
    failure = unit.failure
    patch: dict[Path, Any]
    if failure is None:
        assert stored is not None, "a job completes only beside its result"
        patch = {STATUS: COMPLETED, ("completedAt",): now}
    else:
        patch = failed_fields(failure, now)
    identity = unit.claim.identity if unit.claim is not None else None
    gate = gates.status_gate(STATUS, spellings(RUNNING), identity)
    # §8.4: when not even the failure can be recorded, the lease ends the job later.
    result = write_final(unit, patch, gate)
    if not result.committed:
        unit.noop = NoOp.FINALIZE_CONFLICT
        return "skipped", None
    started = unit.claim.started_at if unit.claim is not None else None
    duration = span_ms(started, now) if started is not None else None
    if failure is None:
        unit.log.info("job_completed", durationMs=duration)
    else:
        unit.log.warning(
            "job_failed", errorCode=failure.code, errorMessage=failure.message, durationMs=duration
        )
    return "finalized", Finalized(completed=failure is None)
