"""The ports of the LLM worker: its prompt and schema registries and the model (SPEC §8-§10).

The document store and Cloud Storage are the engine's ports; adapters implement all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from msgspec import Struct

from engine.ports import BlobStore, DocumentStore
from states.llm_client.contracts import JsonObject, LLMProfile


class Registry(Protocol):
    """Prompt and schema registries; documents are immutable by contract."""

    def prompt(self, prompt_id: str) -> JsonObject | None: ...

    def schema(self, schema_id: str) -> JsonObject | None: ...


class LLMRequest(Struct, kw_only=True):
    model: str
    system_instruction: str
    user_text: str
    images: list[bytes]
    profile: LLMProfile
    response_json_schema: JsonObject


class LLMResponse(Struct, kw_only=True):
    text: str | None
    finish_reason: str | None
    model_version: str | None = None
    usage_metadata: JsonObject | None = None
    response_id: str | None = None
    safety_ratings: list[JsonObject] | None = None


FaultKind = Literal["rate_limited", "server", "timeout", "connection", "client"]


class LLMCallFailed(Exception):
    """A Gemini call that produced no response; `kind` drives the error code mapping."""

    def __init__(self, kind: FaultKind, status: int | None = None, reason: str = "") -> None:
        super().__init__(f"{kind} status={status} {reason}".strip())
        self.kind = kind
        self.status = status
        self.reason = reason


class LLM(Protocol):
    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse: ...


@dataclass(frozen=True)
class LlmPorts:
    store: DocumentStore
    registry: Registry
    blobs: BlobStore
    llm: LLM
