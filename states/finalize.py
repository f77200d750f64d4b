"""RUNNING.finalize: RUNNING → SUCCEEDED | FAILED, gated on the step still being RUNNING.

Always attempted once a step is claimed. A step already SUCCEEDED or FAILED is never touched
(`already_final`), and the patch sets only the step's own fields by dotted path (SPEC §4).
"""

from __future__ import annotations

from typing import Any

from engine.clock import rfc3339
from engine.errors import NoOp, StoreUnavailable
from engine.step_run import StepRun

FINAL = ("SUCCEEDED", "FAILED")


def execution(run: StepRun, finished_iso: str, finished_ms: float) -> dict[str, Any]:
    timing: dict[str, Any] = {"finishedAt": finished_iso}
    if run.started_at is not None:
        timing = {
            "startedAt": rfc3339(run.started_at),
            "finishedAt": finished_iso,
            "durationMs": max(0, int(finished_ms - run.started_at.timestamp() * 1000)),
        }
    result: dict[str, Any] = {"timing": timing}
    response = run.response
    if response is not None and response.finish_reason:
        llm: dict[str, Any] = {"finishReason": response.finish_reason}
        if response.model_version:
            llm["modelVersion"] = response.model_version
        if response.usage_metadata is not None:
            llm["usageMetadata"] = response.usage_metadata
        if response.response_id:
            llm["requestId"] = response.response_id
        if run.attempts:
            llm["attempts"] = {"total": run.attempts}
        result["llm"] = llm
    if run.reused:
        result["reused"] = True
    return result


def patch(run: StepRun) -> dict[str, Any]:
    finished = run.now()
    finished_iso = rfc3339(finished)
    fields: dict[str, Any] = {"finishedAt": finished_iso}
    if run.failure is None:
        fields["status"] = "SUCCEEDED"
        fields["outputs.gcs_uri"] = run.gcs_uri
    else:
        fields["status"] = "FAILED"
        fields["error"] = run.failure.as_error()
    fields["outputs.execution"] = execution(run, finished_iso, finished.timestamp() * 1000)
    return {"status": fields.pop("status"), **fields}


def enter(run: StepRun) -> None:
    try:
        result = run.ports.store.update_step(
            run.run_id, run.step_id, "RUNNING", patch(run), run.claim_identity
        )
    except StoreUnavailable as exc:
        run.log.error(
            "step_finalize_failed",
            reason="firestore_error",
            intendedStatus="FAILED" if run.failure else "SUCCEEDED",
        )
        raise exc
    if result.committed:
        if run.failure is None:
            run.log.info(
                "step_completed", gcsUri=run.gcs_uri, reused=run.reused, attempts=run.attempts
            )
        else:
            run.log.warning("step_failed", error=run.failure.as_error(), attempts=run.attempts)
        run.trigger("finalized")
        return
    if result.conflict or str(result.observed).startswith("RUNNING"):
        run.noop = NoOp.FINALIZE_CONFLICT
    elif result.observed in FINAL:
        run.noop = NoOp.ALREADY_FINAL
    else:
        run.noop = NoOp.NOT_RUNNING
    run.log.info("finalize_skipped", reason=str(run.noop), observedStatus=result.observed)
    run.trigger("finalize_skipped")


def succeeded(run: StepRun) -> bool:
    return run.failure is None
