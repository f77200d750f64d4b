"""QUEUED.validate: the job against BACKTEST §4, before any claim.

Pure over the job as read, so every delivery of one job reaches the same verdict; a violation
is recorded as the job's failure (its code and the message naming the offending path) and the
job is failed from `queued` without ever being claimed or run.
"""

from __future__ import annotations

from engine.errors import Failure
from engine.lifecycle import Next
from states.backtest.unit import JobUnit
from states.backtest.validation import ValidJob, validate_job


def enter(unit: JobUnit, _: None) -> Next:
    verdict = validate_job(unit.doc_id, unit.doc.data)
    if isinstance(verdict, ValidJob):
        return "valid", verdict
    unit.failure = Failure(verdict.code, verdict.message)
    unit.log.warning("job_validation_failed", errorCode=verdict.code, field=verdict.field)
    return "invalid", verdict
