"""RUNNING.result: `backtestResults/{jobId}`, created exactly once (BACKTEST §7).

Create-only (`DocumentStore.create`), never set or update: an existing document is never
replaced. A create that meets one (a retry whose first attempt landed, or a result left by an
earlier run) hands it to `reuse`, which checks whose it is. Transient failures are tried three
times; then one re-read decides: present → reuse, absent → RESULT_WRITE_FAILED. When even that
read fails, the create's outcome is unknown: the job is left running rather than failed beside
a result that may exist, and the lease rule ends it (as COMMON.md §3 does for a claim).
"""

from __future__ import annotations

from typing import Any

from engine.errors import Failure, StoreUnavailable
from engine.lifecycle import Next
from states.backtest.errors import ErrorCode
from states.backtest.phases import Found, Simulated, Stored
from states.backtest.unit import JobUnit
from wheelsim import ENGINE_VERSION

RESULT_MAX_BYTES = 1_000_000  # §7.2: canonical JSON of `backtestResult`, checked before writing
CREATE_TRIES = 3


def enter(unit: JobUnit, simulated: Simulated) -> Next:
    if simulated.canonical_bytes > RESULT_MAX_BYTES:
        raise Failure(
            ErrorCode.RESULT_TOO_LARGE,
            f"result: canonical JSON of {simulated.canonical_bytes} bytes exceeds "
            f"{RESULT_MAX_BYTES}",
        )
    unit.budget.require("the result write")  # §10: never once the result exists
    document = {
        "jobId": unit.doc_id,
        "userId": simulated.priced.owned.job.user_id,
        "createdAt": unit.now(),
        "engineVersion": ENGINE_VERSION,
        "backtestResult": simulated.result,
        "resultSha256": simulated.sha256,
    }
    unit.log.info("result_write_started", bytes=simulated.canonical_bytes)
    if create(unit, document):
        unit.log.info("result_write_finished", outcome="created", resultSha256=simulated.sha256)
        return "created", Stored(simulated.sha256, "created")
    # It exists (AlreadyExists), or every try failed: one read decides which.
    try:
        found = unit.ports.store.get(unit.config.results_collection, unit.doc_id)
    except StoreUnavailable:
        unit.log.error("result_outcome_unknown", attempts=CREATE_TRIES)
        unit.ended = "result_outcome_unknown"
        return "unknown", None
    if found is not None:
        return "exists", Found(found.data, after_create=True)
    raise Failure(ErrorCode.RESULT_WRITE_FAILED, "result: backtestResults could not be created")


def create(unit: JobUnit, document: dict[str, Any]) -> bool:
    """True when our create landed; False when the document exists or every try failed."""
    for attempt in range(1, CREATE_TRIES + 1):
        try:
            return unit.ports.store.create(unit.config.results_collection, unit.doc_id, document)
        except StoreUnavailable as exc:
            unit.log.warning(
                "result_write_failed",
                attempts=attempt,
                exceptionType=type(exc).__name__,
                reason=exc.message,
            )
    return False
