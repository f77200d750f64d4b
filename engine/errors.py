"""The catalogue of outcomes (SPEC §6).

Every way an invocation can end is named here, so that the orchestrator and the people reading
runs can rely on stable codes: step-level errors finalize the step FAILED, run-level errors touch
only `flow_run.error`, and no-op reasons write nothing at all.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable `error.code` values written to Firestore."""

    FLOW_RUN_NOT_FOUND = "FLOW_RUN_NOT_FOUND"
    FLOW_RUN_INVALID = "FLOW_RUN_INVALID"
    INVALID_STEP_INPUTS = "INVALID_STEP_INPUTS"
    LLM_PROFILE_INVALID = "LLM_PROFILE_INVALID"
    PROMPT_NOT_FOUND = "PROMPT_NOT_FOUND"
    INVALID_STRUCTURED_OUTPUT = "INVALID_STRUCTURED_OUTPUT"
    LLM_SAFETY_BLOCK = "LLM_SAFETY_BLOCK"
    TIME_BUDGET_EXCEEDED = "TIME_BUDGET_EXCEEDED"
    GEMINI_REQUEST_FAILED = "GEMINI_REQUEST_FAILED"
    RATE_LIMITED = "RATE_LIMITED"
    GCS_WRITE_FAILED = "GCS_WRITE_FAILED"
    GCS_READ_FAILED = "GCS_READ_FAILED"
    FIRESTORE_UNAVAILABLE = "FIRESTORE_UNAVAILABLE"
    FIRESTORE_CLAIM_FAILED = "FIRESTORE_CLAIM_FAILED"
    FIRESTORE_FINALIZE_FAILED = "FIRESTORE_FINALIZE_FAILED"
    WORKER_INTERNAL_ERROR = "WORKER_INTERNAL_ERROR"
    STEP_LEASE_EXPIRED = "STEP_LEASE_EXPIRED"
    ARTIFACT_INVALID = "ARTIFACT_INVALID"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        ErrorCode.GEMINI_REQUEST_FAILED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.GCS_WRITE_FAILED,
        ErrorCode.GCS_READ_FAILED,
        ErrorCode.FIRESTORE_UNAVAILABLE,
        ErrorCode.FIRESTORE_CLAIM_FAILED,
        ErrorCode.FIRESTORE_FINALIZE_FAILED,
        ErrorCode.STEP_LEASE_EXPIRED,
    }
)


class NoOp(StrEnum):
    """Reasons an invocation ends without writing anything (`cloud_event_noop`)."""

    RUN_NOT_RUNNING = "run_not_running"
    NO_READY_STEP = "no_ready_step"
    DEPENDENCY_NOT_SUCCEEDED = "dependency_not_succeeded"
    NOT_READY = "not_ready"
    CLAIM_CONFLICT = "claim_conflict"
    ALREADY_FINAL = "already_final"
    NOT_RUNNING = "not_running"
    FINALIZE_CONFLICT = "finalize_conflict"


class Ignored(StrEnum):
    """Reasons an event is dropped before the flow run is examined (`cloud_event_ignored`)."""

    INVALID_SUBJECT = "invalid_subject"
    FLOW_RUN_NOT_FOUND = "flow_run_not_found"
    EVENT_TYPE_FILTERED = "event_type_filtered"


class StepFailure(Exception):
    """A catalogued reason to finalize the claimed step FAILED.

    The message must already be sanitized: it is written to Firestore verbatim and never holds
    prompt text, model output or secrets.
    """

    def __init__(
        self, code: ErrorCode, message: str, details: dict[str, Any] | None = None
    ) -> None:
        message = capped(message)
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.details:
            error["details"] = self.details
        return error


class FlowRunInvalid(Exception):
    """The flow run document breaks the run-level required subset (SPEC §2)."""

    def __init__(self, message: str) -> None:
        message = capped(message)
        super().__init__(message)
        self.message = message


class StoreUnavailable(Exception):
    """A transient fault of Firestore or GCS outlived the adapter's retries.

    `code` is the catalogued error it becomes when it ends a claimed step.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_failure(self) -> StepFailure:
        return StepFailure(self.code, self.message)


class WriteOutcomeUnknown(StoreUnavailable):
    """A write that may or may not have landed: the client saw an error and every re-read
    within the call's timeout failed too. Never to be taken for "not written" (COMMON.md §3)."""


def internal_error(exc: BaseException) -> StepFailure:
    """Turns an exception nothing anticipated into a sanitized failure: its type only."""
    return StepFailure(
        ErrorCode.WORKER_INTERNAL_ERROR, f"unexpected {type(exc).__name__} in worker"
    )


MESSAGE_MAX_CHARS = 500
MESSAGE_MAX_BYTES = 512


def capped(message: str) -> str:
    """A stored message within COMMON.md §7's bounds (500 characters, 512 bytes of UTF-8),
    cut on a character boundary with an ellipsis, so a long detail can never push a finalize
    past Firestore's document limit."""
    if len(message) <= MESSAGE_MAX_CHARS and len(message.encode("utf-8")) <= MESSAGE_MAX_BYTES:
        return message
    budget = MESSAGE_MAX_BYTES - len("…".encode())
    cut = message[: MESSAGE_MAX_CHARS - 1].encode("utf-8")[:budget].decode("utf-8", "ignore")
    return cut + "…"
