"""RUNNING.generate: one Gemini generateContent call (the first, or the single repair).

The call is gated and capped by the time budget; SDK retries are off, so a fault surfaces at
once and is mapped to a catalogued code (SPEC §6).
"""

from __future__ import annotations

import json
import time
from typing import Any

from engine.clock import elapsed_ms
from engine.errors import Failure
from engine.lifecycle import Next
from states.llm_client.errors import ErrorCode
from states.llm_client.phases import Assembled, Generated, Rejected
from states.llm_client.ports import LLMCallFailed, LLMRequest, LLMResponse
from states.llm_client.unit import LlmUnit

# A model call with less than this to spend cannot be expected to finish: not worth starting.
MIN_CALL_SECONDS = 5.0
REPAIR_INSTRUCTION = (
    "Your previous answer was rejected. Return only JSON matching the schema; no markdown; "
    "no extra text."
)


class CallFailure(Failure):
    """A model call that produced no response; the finalize still records the calls made and
    the last response there was (a failed repair keeps the first answer's metadata)."""

    def __init__(self, code: str, message: str, attempt: int, previous: LLMResponse | None) -> None:
        super().__init__(code, message)
        self.attempt = attempt
        self.previous = previous


def enter(unit: LlmUnit, request: Assembled | Rejected) -> Next:
    assembled = request if isinstance(request, Assembled) else request.generated.assembled
    resolved = assembled.resolved
    attempt = 1 if isinstance(request, Assembled) else request.generated.attempt + 1
    what = "gemini repair request" if attempt > 1 else "gemini request"
    unit.budget.require(what, margin_s=MIN_CALL_SECONDS)
    timeout = unit.budget.cap(unit.config.gemini_timeout_s)
    call = LLMRequest(
        model=resolved.profile.effective_model or "",
        system_instruction=resolved.prompt.system_instruction,
        user_text=assembled.context.user_text
        if isinstance(request, Assembled)
        else repair_text(request),
        images=assembled.context.images,
        profile=resolved.profile,
        response_json_schema=resolved.schema.json_schema,
    )
    unit.log.info(
        "llm_request_started",
        model=call.model,
        attempt=attempt,
        images=len(call.images),
        timeoutSeconds=round(timeout, 1),
    )
    started = time.monotonic()

    def finished(severity: str, **fields: Any) -> None:
        elapsed = elapsed_ms(started)
        unit.log.emit(
            "llm_request_finished", severity, attempt=attempt, durationMs=elapsed, **fields
        )

    try:
        response = unit.ports.llm.generate(call, timeout)
    except LLMCallFailed as exc:
        finished("WARNING", status="error", faultKind=exc.kind, httpStatus=exc.status)
        previous = request.generated.response if isinstance(request, Rejected) else None
        code, message = fault_failure(exc)
        raise CallFailure(code, message, attempt, previous) from None
    finished(
        "INFO",
        status="ok",
        finishReason=response.finish_reason,
        modelVersion=response.model_version,
        usageMetadata=response.usage_metadata,
    )
    return "generated", Generated(assembled, response, attempt)


def fault_failure(exc: LLMCallFailed) -> tuple[str, str]:
    status = f" status={exc.status}" if exc.status is not None else ""
    if exc.kind == "rate_limited":
        return ErrorCode.RATE_LIMITED, f"gemini rate limited{status}"
    if exc.kind in ("server", "timeout", "connection"):
        return ErrorCode.GEMINI_REQUEST_FAILED, f"gemini request failed: {exc.kind}{status}"
    return ErrorCode.LLM_PROFILE_INVALID, f"gemini rejected the request{status}"


def repair_text(rejected: Rejected) -> str:
    """The repair prompt, built in code; the rejected candidate stays in memory only."""
    generated = rejected.generated
    resolved = generated.assembled.resolved
    errors = "\n".join(f"- {e['path']}: {e['error']}" for e in rejected.invalid.errors[:10])
    previous = generated.response.text or ""
    return (
        f"{generated.assembled.context.user_text}\n\n<repair>\n{REPAIR_INSTRUCTION}\n"
        f"schemaId: {resolved.schema_id}\n"
        f"schema: {json.dumps(resolved.schema.json_schema, separators=(',', ':'))}\n"
        f"reason: {rejected.invalid.kind}: {rejected.invalid.message}\n"
        f"errors:\n{errors or '- none'}\n"
        f"previous answer:\n{previous}\n</repair>"
    )
