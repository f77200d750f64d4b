"""RUNNING.resolve: step inputs, the llmProfile, and the prompt and schema registries.

Everything here is checked before any Gemini call (SPEC §7, §8): a step that cannot produce a
valid request fails fast with a non-retryable code instead of spending tokens.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec
from jsonschema import Draft202012Validator, SchemaError

from engine.errors import Failure
from engine.lifecycle import Next
from engine.names import object_name_problem
from states.llm_client import schema_regex
from states.llm_client.contracts import ID_MAX_LEN, SCHEMA_ID_RE, LLMProfile, LLMPrompt, LLMSchema
from states.llm_client.errors import ErrorCode
from states.llm_client.phases import Resolved
from states.llm_client.unit import LlmUnit, step, step_id, unit_report_uri

JSON_MIME = "application/json"
_EMBEDDED_TIMEFRAME = re.compile(r"^[1-9][0-9]*[A-Za-z]$")


def enter(unit: LlmUnit, _: Any) -> Next:
    current = step(unit)
    unknown = sorted(dep for dep in current.dependencies if dep not in unit.doc.steps)
    if unknown:
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS, f"dependsOn names unknown step(s): {', '.join(unknown)}"
        )
    check_timeframe(step_id(unit), current.timeframe)
    check_report_name(unit)
    llm = current.inputs.get("llm")
    if not isinstance(llm, dict):
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, "inputs.llm must be an object")
    prompt_id_ = prompt_id(llm.get("promptId"))
    prompt = fetch_prompt(unit, prompt_id_)
    profile_raw, profile_ = profile(llm.get("llmProfile"), unit.config.allowed_models)
    assert profile_.structured_output is not None  # checked by profile()
    schema_id = profile_.structured_output.schema_id
    if profile_.structured_output.schema_sha256:
        unit.log.info(
            "structured_output_schema_pinned",
            schemaId=schema_id,
            schemaSha256=profile_.structured_output.schema_sha256,
        )
    schema, sha = fetch_schema(unit, schema_id)
    return "resolved", Resolved(
        prompt_id=prompt_id_,
        prompt=prompt,
        profile_raw=profile_raw,
        profile=profile_,
        schema_id=schema_id,
        schema=schema,
        schema_sha256=sha,
    )


def check_timeframe(step_id: str, timeframe: str | None) -> None:
    """The artifact path uses the step timeframe; a stepId that embeds another one is a typo."""
    if not timeframe or "/" in timeframe:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, "step timeframe is missing or not path-safe")
    embedded = embedded_timeframe(step_id)
    if embedded is not None and embedded != timeframe:
        raise Failure(
            ErrorCode.INVALID_STEP_INPUTS,
            f"step timeframe {timeframe} disagrees with stepId timeframe {embedded}",
        )


def check_report_name(unit: LlmUnit) -> None:
    """The report's object name, checked before anything is fetched or paid for."""
    problem = object_name_problem(unit_report_uri(unit).split("/", 3)[3])
    if problem is not None:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, f"report object name {problem}")


def embedded_timeframe(step_id: str) -> str | None:
    for token in re.split(r"[_:]", step_id):
        if _EMBEDDED_TIMEFRAME.match(token):
            return token
    return None


def prompt_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, "inputs.llm.promptId is required")
    if len(value) > ID_MAX_LEN or "/" in value:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, "inputs.llm.promptId is not a document id")
    return value


def profile(raw: Any, allowed_models: tuple[str, ...]) -> tuple[dict[str, Any], LLMProfile]:
    """Validates the llmProfile as given: it is never merged with defaults."""
    if not isinstance(raw, dict):
        raise Failure(ErrorCode.LLM_PROFILE_INVALID, "inputs.llm.llmProfile must be an object")
    try:
        parsed = msgspec.convert(raw, LLMProfile)
    except msgspec.ValidationError as exc:
        raise Failure(
            ErrorCode.LLM_PROFILE_INVALID,
            "llmProfile invalid: "
            + str(exc).replace("$.", "llmProfile.").replace("$", "llmProfile"),
        ) from None
    model = parsed.effective_model
    if not model:
        raise Failure(ErrorCode.LLM_PROFILE_INVALID, "llmProfile.modelName is required")
    if parsed.response_mime_type != JSON_MIME:
        raise Failure(
            ErrorCode.LLM_PROFILE_INVALID, "llmProfile.responseMimeType must be application/json"
        )
    if parsed.candidate_count not in (None, 1):
        raise Failure(ErrorCode.LLM_PROFILE_INVALID, "llmProfile.candidateCount must be 1")
    spec = parsed.structured_output
    if spec is None or not spec.schema_id:
        raise Failure(
            ErrorCode.LLM_PROFILE_INVALID, "llmProfile.structuredOutput.schemaId is required"
        )
    if len(spec.schema_id) > ID_MAX_LEN or not SCHEMA_ID_RE.match(spec.schema_id):
        raise Failure(
            ErrorCode.LLM_PROFILE_INVALID,
            "llmProfile.structuredOutput.schemaId does not match the schema id pattern",
        )
    if allowed_models and model not in allowed_models:
        raise Failure(
            ErrorCode.LLM_PROFILE_INVALID, f"model {model} is not in GEMINI_ALLOWED_MODELS"
        )
    return raw, parsed


def schema_version(schema_id: str) -> int:
    """`llm_schema_1M_report_v3_2` → 3: the major version names the output format."""
    match = SCHEMA_ID_RE.match(schema_id)
    if match is None:
        raise Failure(ErrorCode.LLM_PROFILE_INVALID, "schemaId does not carry a version")
    return int(match.group(2))


def canonical_sha256(json_schema: dict[str, Any]) -> str:
    canonical = json.dumps(json_schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def fetch_prompt(unit: LlmUnit, prompt_id: str) -> LLMPrompt:
    unit.budget.require("prompt fetch")
    unit.log.info("prompt_fetch_started", promptId=prompt_id)
    doc = unit.ports.registry.prompt(prompt_id)
    if doc is None:
        unit.log.warning("prompt_fetch_finished", promptId=prompt_id, found=False)
        raise Failure(ErrorCode.PROMPT_NOT_FOUND, f"prompt {prompt_id} not found")
    try:
        prompt = msgspec.convert(doc, LLMPrompt)
    except msgspec.ValidationError:
        unit.log.warning("prompt_fetch_finished", promptId=prompt_id, found=True, valid=False)
        raise Failure(ErrorCode.LLM_PROFILE_INVALID, f"prompt {prompt_id} is malformed") from None
    unit.log.info("prompt_fetch_finished", promptId=prompt_id, found=True, valid=True)
    return prompt


def fetch_schema(unit: LlmUnit, schema_id: str) -> tuple[LLMSchema, str]:
    unit.budget.require("schema fetch")
    doc = unit.ports.registry.schema(schema_id)
    problem = None
    schema: LLMSchema | None = None
    if doc is None:
        problem = "not_found"
    else:
        try:
            schema = msgspec.convert(doc, LLMSchema)
        except msgspec.ValidationError:
            problem = "malformed"
        else:
            problem = _checked(canonical_sha256(schema.json_schema), schema.json_schema)
    if problem is not None or schema is None:
        unit.log.warning("structured_output_schema_invalid", schemaId=schema_id, reason=problem)
        raise Failure(
            ErrorCode.LLM_PROFILE_INVALID,
            f"structured_output_schema_invalid schemaId={schema_id} reason={problem}",
        )
    sha = canonical_sha256(schema.json_schema)
    if schema.sha256 and schema.sha256 != sha:
        unit.log.warning(
            "structured_output_schema_sha_mismatch",
            schemaId=schema_id,
            storedSha256=schema.sha256,
            computedSha256=sha,
        )
    return schema, sha


_CHECKED: dict[str, str | None] = {}


def _checked(sha: str, json_schema: dict[str, Any]) -> str | None:
    """`schema_problem`, once per schema content: registry schemas are immutable."""
    if sha not in _CHECKED:
        _CHECKED[sha] = schema_problem(json_schema)
    return _CHECKED[sha]


def schema_problem(json_schema: dict[str, Any]) -> str | None:
    """The minimal invariants: a valid JSON Schema requiring summary{markdown:string}, details."""
    try:
        Draft202012Validator.check_schema(json_schema)
    except SchemaError:
        return "not_a_json_schema"
    try:
        schema_regex.check(json_schema)
    except schema_regex.UnsupportedPattern:
        return "pattern_not_linear_time"
    required = json_schema.get("required")
    properties = json_schema.get("properties")
    if not isinstance(required, list) or not {"summary", "details"} <= set(required):
        return "missing_required_summary_details"
    if not isinstance(properties, dict):
        return "missing_properties"
    summary = properties.get("summary")
    if not isinstance(summary, dict) or "details" not in properties:
        return "missing_properties"
    markdown = (summary.get("properties") or {}).get("markdown")
    if not isinstance(markdown, dict) or markdown.get("type") != "string":
        return "summary_markdown_not_string"
    if "markdown" not in (summary.get("required") or []):
        return "summary_markdown_not_required"
    return None
