"""RUNNING.finalize of an LLM_REPORT step: the outcome with the fields of SPEC §4 and §11.

Reached with the report written or adopted, or from any failure; in both cases it records what
the step reached: its timing, and the last model response's metadata with the calls made.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.clock import rfc3339, span_ms
from engine.lifecycle import Next
from states.flow_run.finalize import finalize
from states.llm_client.generate import CallFailure
from states.llm_client.phases import Adopted, Generated, Rejected, Validated, Written
from states.llm_client.ports import LLMResponse
from states.llm_client.unit import LlmUnit


def enter(unit: LlmUnit, result: Written | Adopted | None) -> Next:
    finished = unit.now()
    finished_iso = rfc3339(finished)
    response, attempts = last_call(unit, result)
    fields: dict[str, Any] = {"finishedAt": finished_iso}
    if unit.failure is None:
        assert result is not None, "a success reaches the finalize with its report"
        fields["status"] = "SUCCEEDED"
        fields["outputs.gcs_uri"] = result.uri
    else:
        fields["status"] = "FAILED"
        fields["error"] = unit.failure.as_error()
    reused = isinstance(result, Adopted) or (isinstance(result, Written) and result.reused)
    fields["outputs.execution"] = execution(unit, finished, response, attempts, reused)
    if unit.failure is None:
        assert result is not None
        completed = {"gcsUri": result.uri, "reused": reused, "attempts": attempts}
    else:
        completed = {"attempts": attempts}
    return finalize(unit, fields, completed)


def last_call(unit: LlmUnit, result: Written | Adopted | None) -> tuple[LLMResponse | None, int]:
    """The last model response the step got, and how many calls it made."""
    if isinstance(result, Adopted):
        return result.response, 0
    if isinstance(result, Written):
        generated = result.validated.generated
        return generated.response, generated.attempt
    reached = unit.last
    response, attempts = None, 0
    if isinstance(reached, Rejected):
        reached = reached.generated
    if isinstance(reached, Validated):
        reached = reached.generated
    if isinstance(reached, Generated):
        response, attempts = reached.response, reached.attempt
    if isinstance(unit.failure, CallFailure):
        response = response or unit.failure.previous
        attempts = max(attempts, unit.failure.attempt)
    return response, attempts


def execution(
    unit: LlmUnit,
    finished: datetime,
    response: LLMResponse | None,
    attempts: int,
    reused: bool,
) -> dict[str, Any]:
    started = unit.claim.started_at if unit.claim is not None else None
    timing: dict[str, Any] = {"finishedAt": rfc3339(finished)}
    if started is not None:
        timing = {
            "startedAt": rfc3339(started),
            "finishedAt": rfc3339(finished),
            "durationMs": span_ms(started, finished),
        }
    result: dict[str, Any] = {"timing": timing}
    if response is not None and response.finish_reason:
        llm: dict[str, Any] = {"finishReason": response.finish_reason}
        if response.model_version:
            llm["modelVersion"] = response.model_version
        if response.usage_metadata is not None:
            llm["usageMetadata"] = response.usage_metadata
        if response.response_id:
            llm["requestId"] = response.response_id
        if attempts:
            llm["attempts"] = {"total": attempts}
        result["llm"] = llm
    if reused:
        result["reused"] = True
    return result
