"""The small interfaces through which states reach the outside world.

States depend on these protocols only; `adapters/` implements them for Firestore, Cloud Storage
and Gemini, and tests may implement them for pure domain checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from msgspec import Struct

from engine.contracts import JsonObject, LLMProfile


class _Absent:
    """The value of a field that is not in the document: a claim identity can be "no
    startedAt at all", and a write gated on it must fail once any startedAt appears."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Snapshot:
    """A document as read, with the update time that preconditions the next write."""

    data: JsonObject
    update_time: datetime


@dataclass(frozen=True)
class GuardedWrite:
    """Outcome of a read → status gate → preconditioned write cycle.

    `committed` is True when our patch landed. Otherwise `observed` is the step status that
    failed the gate, or None when no attempt landed: every one lost a precondition race
    (`conflict`), or the last one erred and a re-read proved it had not landed (`failed`).
    """

    committed: bool
    observed: str | None = None
    failed: bool = False

    @property
    def conflict(self) -> bool:
        return not self.committed and self.observed is None and not self.failed


class FlowRunStore(Protocol):
    def load(self, run_id: str) -> Snapshot | None: ...

    def update_step(
        self,
        run_id: str,
        step_id: str,
        expect: str,
        patch: dict[str, Any],
        also: dict[str, Any] | None = None,
    ) -> GuardedWrite:
        """Applies `patch` (dotted field paths relative to the step) only while the step status
        equals `expect` and every `also` field still holds its value (the claim's identity)."""
        ...

    def set_run_error(self, run_id: str, error: JsonObject) -> bool: ...

    def running_runs(self) -> list[tuple[str, JsonObject]]:
        """Flow runs whose status is RUNNING (for stale-step recovery)."""
        ...


class Registry(Protocol):
    """Prompt and schema registries; documents are immutable by contract."""

    def prompt(self, prompt_id: str) -> JsonObject | None: ...

    def schema(self, schema_id: str) -> JsonObject | None: ...


class BlobNotFound(Exception):
    """The object named by a `gs://` URI does not exist."""


class BlobTooLarge(Exception):
    """The object is larger than the caller's limit (only limit + 1 bytes were fetched)."""


class BlobUndecodable(Exception):
    """The object's stored encoding (gzip) does not decode: bad input, not an outage."""


class BlobStore(Protocol):
    def read(self, uri: str, limit: int) -> bytes:
        """At most `limit` bytes, decoded when stored gzip-encoded; raises BlobTooLarge beyond,
        BlobNotFound if absent, BlobUndecodable if its encoding is corrupt."""
        ...

    def exists(self, uri: str) -> bool: ...

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        """Create-only write: True when created, False when the object already existed."""
        ...


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
class Ports:
    store: FlowRunStore
    registry: Registry
    blobs: BlobStore
    llm: LLM
