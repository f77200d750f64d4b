"""RUNNING.validate: the structured output pipeline of SPEC §10.

The registry schema is the single source of truth. Rejections are described by kind, sizes, a
hash and at most ten `{path, error}` items — never by the candidate text itself.
"""

from __future__ import annotations

import hashlib
from typing import Any

from jsonschema.exceptions import ValidationError

from engine import jsontext
from engine.errors import Failure
from engine.lifecycle import Next
from states.llm_client.errors import ErrorCode
from states.llm_client.generate import MIN_CALL_SECONDS
from states.llm_client.phases import Generated, Invalid, Rejected, Validated
from states.llm_client.schema_regex import LinearValidator
from states.llm_client.unit import LlmUnit

REPAIRABLE = ("missing_text", "json_parse", "schema_validation")
PARSE_PROBLEMS = {
    "invalid": "not valid JSON",
    "non_finite": "NaN or Infinity is not JSON",
    "too_deep": f"nested deeper than {jsontext.MAX_DEPTH} levels",
}
MAX_ERRORS = 10


def enter(unit: LlmUnit, generated: Generated) -> Next:
    response = generated.response
    resolved = generated.assembled.resolved
    if response.finish_reason == "SAFETY":
        raise Failure(ErrorCode.LLM_SAFETY_BLOCK, "model response blocked: finishReason=SAFETY")
    text = response.text or ""
    invalid: Invalid | None = None
    output: dict[str, Any] | None = None
    if not text:
        invalid = rejection("missing_text", "no text in candidate", [], text)
    else:
        try:
            value = jsontext.loads(text)
        except jsontext.JsonRejected as exc:
            invalid = rejection("json_parse", PARSE_PROBLEMS[exc.reason], [], text)
        else:
            errors = schema_errors(resolved.schema.json_schema, value, resolved.schema_sha256)
            if errors:
                invalid = rejection(
                    "schema_validation",
                    describe(errors[0]),
                    [item(e) for e in errors[:MAX_ERRORS]],
                    text,
                )
            elif isinstance(value, dict):
                output = value
    if invalid is None and output is not None:
        if generated.attempt > 1:
            unit.log.info("structured_output_repair_attempt_finished", attempt=1, status="valid")
        return "valid", Validated(generated, output)
    if invalid is None:  # valid against the schema, yet not an object: no report can hold it
        invalid = rejection("schema_validation", "path=$ expected=object", [], text)
    planned = repair_allowed(unit, generated, invalid)
    unit.log.warning(
        "structured_output_invalid",
        reason={"kind": invalid.kind, "message": invalid.message},
        llm={"finishReason": response.finish_reason},
        diagnostics={
            "textBytes": invalid.text_bytes,
            "textSha256": invalid.text_sha256,
            "validationErrors": invalid.errors,
        },
        policy={
            "repairPlanned": planned,
            "remainingSeconds": round(unit.budget.remaining(), 1),
            "finalizeBudgetSeconds": unit.budget.finalize_budget_s,
        },
        attempt=generated.attempt,
    )
    if planned:
        unit.log.info("structured_output_repair_attempt_started", attempt=1)
    return "invalid", Rejected(generated, invalid, repair_planned=planned)


def repair_allowed(unit: LlmUnit, generated: Generated, invalid: Invalid) -> bool:
    """One repair at most, only for repairable kinds, only with time to spare."""
    return (
        generated.attempt < 2
        and invalid.kind in REPAIRABLE
        and unit.budget.spendable() > MIN_CALL_SECONDS
    )


def repairable(rejected: Rejected) -> bool:
    """Guard: the repair call was planned when the candidate was rejected."""
    return rejected.repair_planned


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


_VALIDATORS: dict[str, Any] = {}


def schema_errors(
    json_schema: dict[str, Any], value: Any, sha: str | None = None
) -> list[ValidationError]:
    """Errors sorted by path; the compiled validator is kept per schema content (immutable)."""
    validator = _VALIDATORS.get(sha) if sha else None
    if validator is None:
        validator = LinearValidator(json_schema)
        if sha:
            _VALIDATORS[sha] = validator
    return sorted(validator.iter_errors(value), key=lambda e: (_dotted(e), str(e.validator)))


# Schema keywords that descend into the instance, and how each names the step it takes.
_NAMED_BY_SCHEMA = "properties"  # the key is the schema's own property name
_KEYED_BY_INSTANCE = {"additionalProperties", "unevaluatedProperties", "propertyNames"}
_INDEXED = {"items", "prefixItems", "contains", "unevaluatedItems"}
_WITH_ARGUMENT = {"properties", "patternProperties", "prefixItems", "dependentSchemas"}
_COMBINATORS = {"allOf", "anyOf", "oneOf"}


def _dotted(error: ValidationError) -> str:
    """The failing location in schema-side terms: property names the schema declares, array
    indices, and `<key>` wherever the key was chosen by the model (additional or pattern
    properties). Model output must not reach stored messages or logs, and a key is output."""
    keywords = list(error.absolute_schema_path)[:-1]  # the last one is the failing rule
    steps = list(error.absolute_path)
    parts: list[str] = []
    index = 0
    while index < len(keywords):
        keyword = keywords[index]
        argument = keywords[index + 1] if index + 1 < len(keywords) else None
        if keyword == _NAMED_BY_SCHEMA and argument is not None:
            parts.append(str(argument))
            steps = steps[1:]
        elif keyword == "patternProperties" or keyword in _KEYED_BY_INSTANCE:
            parts.append("<key>")
            steps = steps[1:] if keyword != "propertyNames" else steps
        elif keyword in _INDEXED:
            step = steps[0] if steps else None
            parts.append(str(step) if isinstance(step, int) else "<index>")
            steps = steps[1:]
        step_over = 2 if keyword in _WITH_ARGUMENT or keyword in _COMBINATORS else 1
        index += step_over
    return ".".join(parts)


def describe(error: ValidationError) -> str:
    """`missing=summary.markdown`, `path=summary.markdown expected=string`, or `path=… rule=…`."""
    where = _dotted(error)
    if error.validator == "required" and isinstance(error.instance, dict):
        # Names from the schema's `required`, never from the instance.
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
