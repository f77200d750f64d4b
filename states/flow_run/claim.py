"""RUNNING.claim: READY → RUNNING with exactly the minimal patch of SPEC §4.

The store re-reads and re-checks the READY gate on every retry, so at most one invocation ever
owns the step; losers end UNCHANGED and write nothing. A claim whose outcome stays unknown is
never taken for "not claimed" (COMMON.md §3).
"""

from __future__ import annotations

from engine import gates
from engine.clock import rfc3339
from engine.errors import Failure, NoOp, Shared
from engine.lifecycle import Next
from engine.ports import Path
from engine.unit import Claim
from states.flow_run.source import StepUnit

STARTED_AT: Path = ("outputs", "execution", "timing", "startedAt")


def step_path(unit: StepUnit, *field: str) -> Path:
    assert unit.unit_id is not None
    return ("steps", unit.unit_id, *field)


def enter(unit: StepUnit, _: None) -> Next:
    started = unit.now()
    token = rfc3339(started)
    identity = {step_path(unit, *STARTED_AT): token}
    result = gates.claim(
        unit,
        unit.config.flow_runs_collection,
        {step_path(unit, "status"): "RUNNING", **identity},
        gates.status_gate(step_path(unit, "status"), frozenset({"READY"})),
        Claim(started_at=started, identity=identity, owned=True, token=token),
    )
    match result:
        case gates.Claimed():
            unit.log.info("claim_attempt", claimed=True, reason="claimed")
            return "claimed", result.claim
        case gates.Lost(observed=observed):
            reason = "claim_conflict" if observed is None else "not_ready"
            unit.log.info("claim_attempt", claimed=False, reason=reason, observedStatus=observed)
            unit.noop = NoOp.CLAIM_CONFLICT
            return "lost", None
        case gates.Unknown():
            # Our claim may be on the step (the gate logged it): stale-step recovery finishes it.
            return "unknown", None
        case gates.Unavailable(message=message):
            unit.log.error("claim_attempt", claimed=False, reason="firestore_error")
            raise Failure(Shared.FIRESTORE_CLAIM_FAILED, message)
