"""RUNNING.probe: is `backtestResults/{jobId}` already there? (BACKTEST §3 step 6, §8.2)

After our own claim, a result an earlier run of this job left (a re-queued job) is reused and
the engine does not run. For a job found running (an event, the sweeper), a result means the
work was done and only the finalize was lost (split brain): it completes, whatever its lease.
Without a result, a job another invocation claimed is left alone while its lease is live, and
failed `JOB_LEASE_EXPIRED` once it is over: it is never run again automatically.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine.clock import rfc3339
from engine.errors import Failure
from engine.lifecycle import Next
from engine.ports import at
from engine.runner import LEFT_ALONE
from engine.unit import Claim
from states.backtest.errors import ErrorCode, NoOp
from states.backtest.job import LEASE_EXPIRES_AT, STARTED_AT, timestamp
from states.backtest.phases import Found, Owned
from states.backtest.unit import JobUnit


def enter(unit: JobUnit, owned: Owned | None) -> Next:
    if unit.claim is None:
        adopt_claim(unit)
    found = unit.ports.store.get(unit.config.results_collection, unit.doc_id)
    if found is not None:
        return "found", Found(found.data, after_create=False)
    if owned is not None:
        return "absent", owned
    deadline = lease_deadline(unit)
    now = unit.now()
    if deadline is not None and now < deadline:
        unit.noop = NoOp.ALREADY_RUNNING
        unit.ended = LEFT_ALONE
        return "alive", None
    shown = rfc3339(deadline) if deadline is not None else None
    unit.failure = Failure(
        ErrorCode.JOB_LEASE_EXPIRED,
        "job: running without a result past its lease"
        + (f" (deadline {shown})" if shown else " (no lease recorded)"),
    )
    unit.log.warning("job_lease_expired", leaseDeadline=shown, startedAt=started_text(unit))
    return "expired", None


def adopt_claim(unit: JobUnit) -> None:
    """Takes over the claim found on the job: its `startedAt` identifies it, whatever its form
    and even absent, so the finalize can never overwrite a newer claim (a re-queue and a new
    run between our read and our write)."""
    started: Any = at(unit.doc.data, STARTED_AT)
    unit.claim = Claim.found(STARTED_AT, started, timestamp(started))


def lease_deadline(unit: JobUnit) -> datetime | None:
    """§8.2: `leaseExpiresAt`; if absent, `startedAt + JOB_LEASE_SECONDS`; both absent: None
    (already expired). A value that is no timestamp counts as absent."""
    explicit = timestamp(unit.doc.data.get(LEASE_EXPIRES_AT[0]))
    if explicit is not None:
        return explicit
    started = timestamp(unit.doc.data.get(STARTED_AT[0]))
    if started is None:
        return None
    lease_s = unit.lease_s if unit.lease_s is not None else unit.config.common.lease_s
    return started + timedelta(seconds=lease_s)


def started_text(unit: JobUnit) -> str | None:
    started = unit.claim.started_at if unit.claim is not None else None
    return rfc3339(started) if started is not None else None
