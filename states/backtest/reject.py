"""QUEUED.reject: `queued → failed` with the validation failure, no claim (BACKTEST §4, §5).

Gated on the status still being `queued` (either spelling): a twin delivery that rejected the
same job first leaves this one nothing to write. Reached with the violation, or with the
failure an unexpected error of the validation itself recorded.
"""

from __future__ import annotations

from engine import gates
from engine.lifecycle import Next
from states.backtest.errors import NoOp
from states.backtest.finalize import failed_fields, write_final
from states.backtest.job import COMPLETED, FAILED, QUEUED, STATUS, canonical_status, spellings
from states.backtest.unit import JobUnit
from states.backtest.validation import Violation


def enter(unit: JobUnit, _: Violation | None) -> Next:
    failure = unit.failure
    assert failure is not None, "a job is rejected for a recorded failure"
    gate = gates.status_gate(STATUS, spellings(QUEUED))
    result = write_final(unit, failed_fields(failure, unit.now()), gate)
    if result.committed:
        unit.log.warning("job_failed", errorCode=failure.code, errorMessage=failure.message)
        return "rejected", None
    # A twin rejected it first (already final), or the job moved on some other way.
    final = canonical_status(result.observed) in (COMPLETED, FAILED)
    unit.noop = NoOp.ALREADY_FINAL if final else NoOp.FINALIZE_CONFLICT
    return "skipped", None
