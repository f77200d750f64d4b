"""RUNNING.reuse: a result already at `backtestResults/{jobId}` completes the job (BACKTEST §7.3).

Reused as is: never overwritten and never compared on content (the engine is deterministic, and
its earlier run may be a different build's). Only whose it is matters: a result naming another
job or another user is a `RESULT_CONFLICT`, whatever found it (our probe, a create that met
AlreadyExists, or the recovery of a job found running).
"""

from __future__ import annotations

from engine.errors import Failure
from engine.lifecycle import Next
from states.backtest.errors import ErrorCode
from states.backtest.phases import Found, Stored
from states.backtest.unit import JobUnit


def enter(unit: JobUnit, found: Found) -> Next:
    data = found.data
    user_id = unit.doc.user_id
    if data.get("jobId") != unit.doc_id or user_id is None or data.get("userId") != user_id:
        unit.failure = Failure(
            ErrorCode.RESULT_CONFLICT,
            "result: backtestResults already holds a result of another job or user",
        )
        return "conflict", None
    sha = data.get("resultSha256")
    sha = sha if isinstance(sha, str) else None
    if not unit.owned:  # split brain: an earlier invocation wrote it but did not finalize
        unit.log.info("job_recovered", resultSha256=sha)
    found_by = "create" if found.after_create else "probe"
    unit.log.info("result_write_finished", outcome="reused", resultSha256=sha, foundBy=found_by)
    return "reused", Stored(sha, "reused")
