"""RUNNING.generate: one Gemini generateContent call (the first, or the single repair).

The call is gated and capped by the time budget; SDK retries are off, so a fault surfaces at
once and is mapped to a catalogued code (SPEC §6).
"""

from __future__ import annotations

import json
import time

from engine.errors import ErrorCode, StepFailure
from engine.ports import LLMCallFailed, LLMRequest
from engine.step_run import StepRun

# A model call with less than this to spend cannot be expected to finish: not worth starting.
MIN_CALL_SECONDS = 5.0
REPAIR_INSTRUCTION = (
    "Your previous answer was rejected. Return only JSON matching the schema; no markdown; "
    "no extra text."
)


def enter(run: StepRun) -> None:
    assert run.profile is not None and run.prompt is not None and run.context is not None
    assert run.schema is not None
    attempt = run.attempts + 1
    what = "gemini repair request" if attempt > 1 else "gemini request"
    run.budget.require(what, margin_s=MIN_CALL_SECONDS)
    timeout = run.budget.cap(run.config.gemini_timeout_s)
    request = LLMRequest(
        model=run.profile.effective_model or "",
        system_instruction=run.prompt.system_instruction,
        user_text=run.context.user_text if attempt == 1 else repair_text(run),
        images=run.context.images,
        profile=run.profile,
        response_json_schema=run.schema.json_schema,
    )
    run.log.info(
        "llm_request_started",
        model=request.model,
        attempt=attempt,
        images=len(request.images),
        timeoutSeconds=round(timeout, 1),
    )
    started = time.monotonic()
    try:
        response = run.ports.llm.generate(request, timeout)
    except LLMCallFailed as exc:
        run.log.warning(
            "llm_request_finished",
            attempt=attempt,
            status="error",
            faultKind=exc.kind,
            httpStatus=exc.status,
            durationMs=int((time.monotonic() - started) * 1000),
        )
        raise fault_failure(exc) from None
    finally:
        run.attempts = attempt
    run.response = response
    run.log.info(
        "llm_request_finished",
        attempt=attempt,
        status="ok",
        finishReason=response.finish_reason,
        modelVersion=response.model_version,
        durationMs=int((time.monotonic() - started) * 1000),
        usageMetadata=response.usage_metadata,
    )
    run.trigger("generated")


def fault_failure(exc: LLMCallFailed) -> StepFailure:
    status = f" status={exc.status}" if exc.status is not None else ""
    if exc.kind == "rate_limited":
        return StepFailure(ErrorCode.RATE_LIMITED, f"gemini rate limited{status}")
    if exc.kind in ("server", "timeout", "connection"):
        return StepFailure(
            ErrorCode.GEMINI_REQUEST_FAILED, f"gemini request failed: {exc.kind}{status}"
        )
    return StepFailure(ErrorCode.LLM_PROFILE_INVALID, f"gemini rejected the request{status}")


def repair_text(run: StepRun) -> str:
    """The repair prompt, built in code; the rejected candidate stays in memory only."""
    assert run.context is not None and run.invalid is not None and run.schema is not None
    errors = "\n".join(f"- {e['path']}: {e['error']}" for e in run.invalid.errors[:10])
    previous = run.response.text if run.response and run.response.text else ""
    return (
        f"{run.context.user_text}\n\n<repair>\n{REPAIR_INSTRUCTION}\n"
        f"schemaId: {run.schema_id}\n"
        f"schema: {json.dumps(run.schema.json_schema, separators=(',', ':'))}\n"
        f"reason: {run.invalid.kind}: {run.invalid.message}\n"
        f"errors:\n{errors or '- none'}\n"
        f"previous answer:\n{previous}\n</repair>"
    )
