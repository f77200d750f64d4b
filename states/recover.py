"""RUNNING.recover: split-brain and stale-step recovery (SPEC §5).

A RUNNING step whose deterministic artifact exists was executed to the end but not finalized;
it is finalized SUCCEEDED from that object, without calling the model or rewriting the object.
A RUNNING step with no artifact whose lease has run out (stale-step recovery only) belonged to
an execution that died: it is failed STEP_LEASE_EXPIRED so the orchestrator can decide.
Both finalize only the claim they looked at (its `startedAt`), never a newer one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.clock import parse_rfc3339
from engine.errors import ErrorCode, StepFailure
from engine.ports import LLMResponse
from engine.step_run import StepRun
from states.write import artifact_uri

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
    """Takes over the claim found on the step: its startedAt times and identifies it."""
    timing = (run.step.outputs.get("execution") or {}).get("timing") or {}
    started = timing.get("startedAt")
    if isinstance(started, str):
        run.claim_token = started
        run.started_at = parse_rfc3339(started)


def lease_expired(run: StepRun) -> bool:
    """Guard: the claim is older than the lease (only stale-step recovery sets a lease)."""
    if run.lease_s is None:
        return False
    adopt_claim(run)
    if run.started_at is None:
        return False  # no claim time: cannot tell a dead execution from a live one
    return (run.now() - run.started_at).total_seconds() > run.lease_s


def expire(run: StepRun) -> None:
    run.failure = StepFailure(
        ErrorCode.STEP_LEASE_EXPIRED,
        f"step RUNNING since {run.claim_token} without a report: lease of {run.lease_s:g}s expired",
    )
    run.log.warning("step_lease_expired", claimStartedAt=run.claim_token, leaseSeconds=run.lease_s)


def enter(run: StepRun) -> None:
    uri = _uri(run)
    assert uri is not None
    run.gcs_uri = uri
    run.reused = True
    adopt_claim(run)
    run.response = llm_metadata(run.ports.blobs.read(uri, ARTIFACT_READ_LIMIT))
    run.log.info("step_recovered_from_artifact", gcsUri=uri)
    run.trigger("adopted")


def llm_metadata(data: bytes) -> LLMResponse | None:
    """What the artifact recorded about the model call, for `outputs.execution.llm`."""
    try:
        llm: Any = msgspec.json.decode(data)["metadata"]["llm"]
        return LLMResponse(
            text=None,
            finish_reason=llm["finishReason"],
            model_version=llm.get("modelVersion"),
            usage_metadata=llm.get("usageMetadata"),
        )
    except (msgspec.DecodeError, KeyError, TypeError):
        return None
