"""What each state of an LLM_REPORT step hands to the next, once, typed.

Each record wraps the one before it, so a state receives everything upstream produced and
nothing downstream has to hope a field happens to be set.
"""

from __future__ import annotations

from dataclasses import dataclass

from states.llm_client.contracts import JsonObject, LLMProfile, LLMPrompt, LLMSchema
from states.llm_client.ports import LLMResponse


@dataclass(frozen=True)
class Resolved:
    """Inputs, llmProfile, prompt and schema, all checked before any model call."""

    prompt_id: str
    prompt: LLMPrompt
    profile_raw: JsonObject
    profile: LLMProfile
    schema_id: str
    schema: LLMSchema
    schema_sha256: str


@dataclass(frozen=True)
class Context:
    """What the model is shown, plus the URIs recorded in the report's metadata."""

    user_text: str
    images: list[bytes]
    ohlcv_uri: str
    manifest_uri: str
    report_uris: list[str]


@dataclass(frozen=True)
class Assembled:
    resolved: Resolved
    context: Context


@dataclass(frozen=True)
class Generated:
    assembled: Assembled
    response: LLMResponse
    attempt: int  # 1 for the first call, 2 for the repair


@dataclass(frozen=True)
class Invalid:
    """Why a candidate was rejected (sanitized: never the candidate text)."""

    kind: str  # finish_reason | missing_text | json_parse | schema_validation
    message: str
    errors: list[dict[str, str]]
    text_bytes: int
    text_sha256: str | None


@dataclass(frozen=True)
class Rejected:
    generated: Generated
    invalid: Invalid
    repair_planned: bool


@dataclass(frozen=True)
class Validated:
    generated: Generated
    output: JsonObject


@dataclass(frozen=True)
class Written:
    validated: Validated
    uri: str
    reused: bool


@dataclass(frozen=True)
class Adopted:
    """A report an earlier execution wrote: what it recorded about its model call."""

    uri: str
    response: LLMResponse
