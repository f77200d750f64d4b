"""How an invocation can end, in the terms every worker shares.

A worker's own catalogue (its `ErrorCode`) names the failures of its domain; the engine needs a
few codes of its own to fail a unit it has claimed (a store down, the time budget spent, a bug
of ours), and the reasons for ending without writing anything. Every message stored anywhere
passes through `capped` (COMMON.md §7).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

MESSAGE_MAX_CHARS = 500
MESSAGE_MAX_BYTES = 512


class Shared(StrEnum):
    """Codes the engine and the adapters produce for any worker."""

    TIME_BUDGET_EXCEEDED = "TIME_BUDGET_EXCEEDED"
    FIRESTORE_UNAVAILABLE = "FIRESTORE_UNAVAILABLE"
    FIRESTORE_CLAIM_FAILED = "FIRESTORE_CLAIM_FAILED"
    FIRESTORE_FINALIZE_FAILED = "FIRESTORE_FINALIZE_FAILED"
    GCS_READ_FAILED = "GCS_READ_FAILED"
    GCS_WRITE_FAILED = "GCS_WRITE_FAILED"
    WORKER_INTERNAL_ERROR = "WORKER_INTERNAL_ERROR"


class NoOp(StrEnum):
    """Reasons the engine itself ends an invocation without writing (`cloud_event_noop`);
    workers add their own (no ready step, a dependency not met, ...)."""

    CLAIM_CONFLICT = "claim_conflict"
    NOT_READY = "not_ready"
    ALREADY_FINAL = "already_final"
    NOT_RUNNING = "not_running"
    FINALIZE_CONFLICT = "finalize_conflict"


class Ignored(StrEnum):
    """Reasons an event is dropped before any unit is examined (`cloud_event_ignored`); the
    "document not found" reason is the worker's (`flow_run_not_found`, `job_not_found`)."""

    INVALID_SUBJECT = "invalid_subject"
    EVENT_TYPE_FILTERED = "event_type_filtered"


def capped(message: str) -> str:
    """A stored message within COMMON.md §7's bounds (500 characters, 512 bytes of UTF-8),
    cut on a character boundary with an ellipsis, so a long detail can never push a write
    past Firestore's document limit."""
    if len(message) <= MESSAGE_MAX_CHARS and len(message.encode("utf-8")) <= MESSAGE_MAX_BYTES:
        return message
    budget = MESSAGE_MAX_BYTES - len("…".encode())
    cut = message[: MESSAGE_MAX_CHARS - 1].encode("utf-8")[:budget].decode("utf-8", "ignore")
    return cut + "…"


class Failure(Exception):
    """A catalogued reason to end a claimed unit as failed.

    The message must already be sanitized: it is stored verbatim (capped) and never holds
    prompt text, model output, keys or stack traces.
    """

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        message = capped(message)
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message
        self.details = details

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return error


class DocumentInvalid(Exception):
    """The document breaks what the worker requires of it as a whole (FLOW_RUN_INVALID)."""

    def __init__(self, message: str) -> None:
        message = capped(message)
        super().__init__(message)
        self.message = message


class StoreUnavailable(Exception):
    """A transient fault of Firestore or Cloud Storage outlived the adapter's retries; `code`
    is the catalogued failure it becomes when it ends a claimed unit."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message

    def as_failure(self) -> Failure:
        return Failure(self.code, self.message)


class WriteOutcomeUnknown(StoreUnavailable):
    """A write that may or may not have landed: the client saw an error and every re-read
    within the call's timeout failed too. Never to be taken for "not written" (COMMON.md §3)."""


def internal_error(exc: BaseException, code: str = Shared.WORKER_INTERNAL_ERROR) -> Failure:
    """An exception nothing anticipated, as a sanitized failure: its type only."""
    return Failure(code, f"unexpected {type(exc).__name__} in worker")


class Catalogue:
    """A worker's error codes and which of them a retry may cure (the orchestrator decides)."""

    def __init__(self, codes: Iterable[str], retryable: Iterable[str]) -> None:
        self.codes = frozenset(str(c) for c in codes) | frozenset(str(c) for c in Shared)
        self.retryable = frozenset(str(c) for c in retryable)
        unknown = self.retryable - self.codes
        assert not unknown, f"retryable codes outside the catalogue: {sorted(unknown)}"

    def __contains__(self, code: object) -> bool:
        return code in self.codes
