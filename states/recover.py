"""RUNNING.recover: split-brain and stale-step recovery (SPEC §5).

A RUNNING step whose deterministic artifact exists was executed to the end but not finalized;
it is finalized SUCCEEDED from that object, without calling the model or rewriting the object.
A RUNNING step with no artifact whose lease has run out (stale-step recovery only) belonged to
an execution that died: it is failed STEP_LEASE_EXPIRED so the orchestrator can decide.
Both finalize only the claim they looked at (its `startedAt`), never a newer one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from engine.clock import parse_rfc3339, rfc3339
from engine.contracts import LLMReportFile
from engine.errors import ErrorCode, StepFailure
from engine.ports import ABSENT, LLMResponse
from engine.step_run import StepRun
from states.artifact import artifact_uri
from states.claim import STARTED_AT

ARTIFACT_READ_LIMIT = 16 * 1024 * 1024


def _uri(run: StepRun) -> str | None:
    timeframe = run.step.timeframe
    if not timeframe or "/" in timeframe:
        return None
    return artifact_uri(run.config, run.run_id, timeframe, run.step_id)


def artifact_exists(run: StepRun) -> bool:
    """Guard: only a step whose report object is already there may be adopted."""
    uri = _uri(run)
    return uri is not None and run.ports.blobs.exists(uri)


def adopt_claim(run: StepRun) -> None:
    """Takes over the claim found on the step: its startedAt identifies it (whatever its form,
    even absent, so a finalize never overwrites a newer claim) and, when it is a timestamp,
    times it. Foreign documents may hold anything here; nothing in them may raise."""
    started: Any = ABSENT
    execution = run.step.outputs.get("execution")
    timing = execution.get("timing") if isinstance(execution, dict) else None
    if isinstance(timing, dict):
        started = timing.get("startedAt", ABSENT)
    run.claim_identity = {STARTED_AT: started}
    run.started_at = claim_time(started)


def claim_time(value: Any) -> datetime | None:
    """A claim's start as an aware UTC datetime; a time without an offset is taken as UTC
    (Firestore and our claims are UTC); anything else is no time at all."""
    moment = parse_rfc3339(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def lease_expired(run: StepRun) -> bool:
    """Guard: the claim is older than the lease (only stale-step recovery sets a lease).

    A claim with no readable start time (missing, not a timestamp) is expired: every claim
    this worker makes records one, so such a step was not claimed by a live execution."""
    if run.lease_s is None:
        return False
    adopt_claim(run)
    if run.started_at is None:
        return True
    return (run.now() - run.started_at).total_seconds() > run.lease_s


def expire(run: StepRun) -> None:
    since = rfc3339(run.started_at) if run.started_at else "an unknown time"
    run.failure = StepFailure(
        ErrorCode.STEP_LEASE_EXPIRED,
        f"step RUNNING since {since} without a report: lease of {run.lease_s:g}s expired",
    )
    run.log.warning(
        "step_lease_expired",
        claimStartedAt=rfc3339(run.started_at) if run.started_at else None,
        leaseSeconds=run.lease_s,
    )


def enter(run: StepRun) -> None:
    uri = _uri(run)
    assert uri is not None
    if run.claim_identity is None:  # split brain: the claim found on the step is the one
        adopt_claim(run)
    report = own_report(run, run.ports.blobs.read(uri, ARTIFACT_READ_LIMIT))
    if report is None:
        raise StepFailure(
            ErrorCode.ARTIFACT_INVALID,
            "the report object exists but is not a report of this run and step",
        )
    llm = report.metadata.llm
    run.response = LLMResponse(
        text=None,
        finish_reason=llm.finish_reason,
        model_version=llm.model_version,
        usage_metadata=llm.usage_metadata,
    )
    run.gcs_uri = uri
    run.reused = True
    run.log.info("step_recovered_from_artifact", gcsUri=uri)
    run.trigger("adopted")


def own_report(run: StepRun, data: bytes) -> LLMReportFile | None:
    """The object as a report of this very run and step, or None: create-only writes can never
    replace what holds the deterministic path, so nothing else may pass for our result."""
    try:
        report = msgspec.json.decode(data, type=LLMReportFile)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if (report.metadata.run_id, report.metadata.step_id) != (run.run_id, run.step_id):
        return None
    return report
