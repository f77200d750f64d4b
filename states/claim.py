"""RUNNING.claim: READY → RUNNING with the minimal patch of SPEC §4.

The adapter re-reads and re-checks the READY gate on every retry, so at most one invocation
ever owns the step; losers end UNCHANGED and write nothing.
"""

from __future__ import annotations

from engine.clock import rfc3339
from engine.errors import ErrorCode, NoOp, StepFailure, StoreUnavailable
from engine.step_run import StepRun


def enter(run: StepRun) -> None:
    started = run.now()
    token = rfc3339(started)
    try:
        result = run.ports.store.update_step(
            run.run_id,
            run.step_id,
            expect="READY",
            patch={"status": "RUNNING", "outputs.execution.timing.startedAt": token},
        )
    except StoreUnavailable as exc:
        run.log.error("claim_attempt", claimed=False, reason="firestore_error")
        raise StepFailure(ErrorCode.FIRESTORE_CLAIM_FAILED, exc.message) from None
    if result.committed:
        run.started_at = started
        run.claim_token = token
        run.log.info("claim_attempt", claimed=True, reason="claimed")
        run.trigger("claimed")
        return
    reason = "claim_conflict" if result.conflict else "not_ready"
    run.log.info("claim_attempt", claimed=False, reason=reason, observedStatus=result.observed)
    run.noop = NoOp.CLAIM_CONFLICT
    run.trigger("claim_lost")
