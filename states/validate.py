"""RUNNING.validate: the structured output pipeline of SPEC §10.

The registry schema is the single source of truth. Rejections are described by kind, sizes, a
hash and at most ten `{path, error}` items — never by the candidate text itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from engine.errors import ErrorCode, StepFailure
from engine.step_run import Invalid, StepRun
from states.generate import MIN_CALL_SECONDS

REPAIRABLE = ("missing_text", "json_parse", "schema_validation")
MAX_ERRORS = 10


def enter(run: StepRun) -> None:
    response = run.response
    assert response is not None and run.schema is not None
    if response.finish_reason == "SAFETY":
        raise StepFailure(ErrorCode.LLM_SAFETY_BLOCK, "model response blocked: finishReason=SAFETY")
    text = response.text or ""
    run.invalid = None
    if not text:
        run.invalid = rejection("missing_text", "no text in candidate", [], text)
    else:
        try:
            value = json.loads(text)
        except ValueError:
            run.invalid = rejection("json_parse", "not valid JSON", [], text)
        else:
            errors = schema_errors(run.schema.json_schema, value, run.schema_sha256)
            if errors:
                run.invalid = rejection(
                    "schema_validation",
                    describe(errors[0]),
                    [item(e) for e in errors[:MAX_ERRORS]],
                    text,
                )
            elif isinstance(value, dict):
                run.output = value
    if run.invalid is None:
        if run.attempts > 1:
            run.log.info("structured_output_repair_attempt_finished", attempt=1, status="valid")
        run.trigger("valid")
        return
    planned = repair_allowed(run)
    run.log.warning(
        "structured_output_invalid",
        reason={"kind": run.invalid.kind, "message": run.invalid.message},
        llm={"finishReason": response.finish_reason},
        diagnostics={
            "textBytes": run.invalid.text_bytes,
            "textSha256": run.invalid.text_sha256,
            "validationErrors": run.invalid.errors,
        },
        policy={
            "repairPlanned": planned,
            "remainingSeconds": round(run.budget.remaining(), 1),
            "finalizeBudgetSeconds": run.budget.finalize_budget_s,
        },
        attempt=run.attempts,
    )
    if planned:
        run.log.info("structured_output_repair_attempt_started", attempt=1)
    run.trigger("invalid")


def repair_allowed(run: StepRun) -> bool:
    """Guard: one repair at most, only for repairable kinds, only with time to spare."""
    return (
        run.attempts < 2
        and run.invalid is not None
        and run.invalid.kind in REPAIRABLE
        and run.budget.spendable() > MIN_CALL_SECONDS
    )


def give_up(run: StepRun) -> None:
    assert run.invalid is not None
    if run.attempts > 1:
        run.log.info("structured_output_repair_attempt_finished", attempt=1, status="invalid")
    finish = run.response.finish_reason if run.response else None
    run.failure = StepFailure(
        ErrorCode.INVALID_STRUCTURED_OUTPUT, failure_message(run.invalid, finish)
    )


def failure_message(invalid: Invalid, finish_reason: str | None) -> str:
    if invalid.kind == "schema_validation":
        return f"structured_output_invalid kind=schema_validation {invalid.message}"
    return f"structured_output_invalid kind={invalid.kind} finishReason={finish_reason}"


def rejection(kind: str, message: str, errors: list[dict[str, str]], text: str) -> Invalid:
    raw = text.encode("utf-8")
    return Invalid(
        kind=kind,
        message=message,
        errors=errors,
        text_bytes=len(raw),
        text_sha256=hashlib.sha256(raw).hexdigest() if raw else None,
    )


_VALIDATORS: dict[str, Draft202012Validator] = {}


def schema_errors(
    json_schema: dict[str, Any], value: Any, sha: str | None = None
) -> list[ValidationError]:
    """Errors sorted by path; the compiled validator is kept per schema content (immutable)."""
    validator = _VALIDATORS.get(sha) if sha else None
    if validator is None:
        validator = Draft202012Validator(json_schema)
        if sha:
            _VALIDATORS[sha] = validator
    return sorted(validator.iter_errors(value), key=lambda e: (_dotted(e), str(e.validator)))


def _dotted(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def describe(error: ValidationError) -> str:
    """`missing=summary.markdown`, `path=summary.markdown expected=string`, or `path=… rule=…`."""
    where = _dotted(error)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        name = missing[0] if missing else "?"
        return f"missing={where + '.' if where else ''}{name}"
    if error.validator == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = "|".join(str(t) for t in expected)
        return f"path={where or '$'} expected={expected}"
    return f"path={where or '$'} rule={error.validator}"


def item(error: ValidationError) -> dict[str, str]:
    """A sanitized `{path, error}`: the rule that failed, never the offending value."""
    return {"path": _dotted(error) or "$", "error": describe(error)}
