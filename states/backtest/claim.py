"""RUNNING.claim: `queued → running` with the lease fields of BACKTEST §5.

The store re-reads and re-checks the `queued` gate on every retry, so one invocation at most
ever owns a job and the engine runs at most once per job; a loser writes nothing
(`claim_conflict`). A claim whose outcome stays unknown is never taken for "not claimed"
(COMMON.md §3): nothing more is written and the lease ends the job if the claim landed.
"""

from __future__ import annotations

from datetime import timedelta

from engine import gates
from engine.clock import rfc3339
from engine.errors import Failure
from engine.lifecycle import Next
from engine.unit import Claim
from states.backtest.errors import ErrorCode, NoOp
from states.backtest.job import LEASE_EXPIRES_AT, QUEUED, RUNNING, STARTED_AT, STATUS, spellings
from states.backtest.phases import Owned
from states.backtest.unit import JobUnit
from states.backtest.validation import ValidJob


def enter(unit: JobUnit, job: ValidJob) -> Next:
    started = unit.now()
    lease_until = started + timedelta(seconds=unit.config.common.lease_s)
    token = rfc3339(started)
    # Our startedAt (a microsecond timestamp) identifies our claim: a finalize requires it.
    identity = {STARTED_AT: started}
    patch = {
        STATUS: RUNNING,
        STARTED_AT: started,
        LEASE_EXPIRES_AT: lease_until,
        ("completedAt",): None,
        ("errorCode",): None,
        ("errorMessage",): None,
    }
    result = gates.claim(
        unit,
        unit.config.jobs_collection,
        patch,
        gates.status_gate(STATUS, spellings(QUEUED)),
        Claim(started_at=started, identity=identity, owned=True, token=token),
    )
    match result:
        case gates.Claimed():
            unit.log.info("job_claimed", leaseExpiresAt=rfc3339(lease_until))
            return "claimed", Owned(job, result.claim)
        case gates.Lost():
            unit.noop = NoOp.CLAIM_CONFLICT
            return "lost", None
        case gates.Unknown():
            return "unknown", None
        case gates.Unavailable(message=message):
            unit.log.error("job_claim_failed", reason="firestore_error")
            raise Failure(ErrorCode.FIRESTORE_UNAVAILABLE, message)
