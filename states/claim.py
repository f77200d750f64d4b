"""RUNNING.claim: READY → RUNNING with the minimal patch of SPEC §4.

The adapter re-reads and re-checks the READY gate on every retry, so at most one invocation
ever owns the step; losers end UNCHANGED and write nothing.
"""

from __future__ import annotations

from engine.clock import rfc3339
from engine.errors import ErrorCode, NoOp, StepFailure, StoreUnavailable, WriteOutcomeUnknown
from engine.step_run import StepRun

STARTED_AT = "outputs.execution.timing.startedAt"


def enter(run: StepRun) -> None:
    started = run.now()
    token = rfc3339(started)
    try:
        result = run.ports.store.update_step(
            run.run_id,
            run.step_id,
            expect="READY",
            patch={"status": "RUNNING", STARTED_AT: token},
        )
    except WriteOutcomeUnknown:
        # Our claim may be on the step. Never call that "not claimed": write nothing more and
        # end; if it landed, stale-step recovery finishes the step (COMMON.md §3).
        run.log.error("claim_outcome_unknown", claimStartedAt=token, reason="firestore_error")
        run.outcome_unknown = True
        run.trigger("claim_lost")
        return
    except StoreUnavailable as exc:  # failed before anything was sent
        run.log.error("claim_attempt", claimed=False, reason="firestore_error")
        raise StepFailure(ErrorCode.FIRESTORE_CLAIM_FAILED, exc.message) from None
    if result.failed:  # every write erred, and a re-read proved none landed
        run.log.error("claim_attempt", claimed=False, reason="firestore_error")
        raise StepFailure(ErrorCode.FIRESTORE_CLAIM_FAILED, "firestore claim write failed")
    if result.committed:
        run.started_at = started
        run.claim_identity = {STARTED_AT: token}
        run.log.info("claim_attempt", claimed=True, reason="claimed")
        run.trigger("claimed")
        return
    reason = "claim_conflict" if result.conflict else "not_ready"
    run.log.info("claim_attempt", claimed=False, reason=reason, observedStatus=result.observed)
    run.noop = NoOp.CLAIM_CONFLICT
    run.trigger("claim_lost")
