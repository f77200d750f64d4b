"""The backtest worker's error catalogue (BACKTEST §14) and its no-op outcomes.

Every code ends a job `failed`, never with a result. "Transient" (the catalogue's `retryable`)
means a resubmission may succeed: the worker itself never retries a job (§8.1).
"""

from __future__ import annotations

from enum import StrEnum

from engine.errors import Catalogue, Shared


class ErrorCode(StrEnum):
    """Stable `errorCode` values written on `backtestJobs/{jobId}`."""

    JOB_INVALID = "JOB_INVALID"
    USER_ID_MISSING = "USER_ID_MISSING"
    ENGINE_VERSION_UNSUPPORTED = "ENGINE_VERSION_UNSUPPORTED"
    CONFIG_INVALID = "CONFIG_INVALID"
    PRICE_PATH_TOO_LONG = "PRICE_PATH_TOO_LONG"
    HISTORY_NOT_FOUND = "HISTORY_NOT_FOUND"
    HISTORY_INVALID = "HISTORY_INVALID"
    HISTORY_UNAVAILABLE = "HISTORY_UNAVAILABLE"
    ENGINE_ERROR = "ENGINE_ERROR"
    TIME_BUDGET_EXCEEDED = Shared.TIME_BUDGET_EXCEEDED.value
    RESULT_TOO_LARGE = "RESULT_TOO_LARGE"
    RESULT_CONFLICT = "RESULT_CONFLICT"
    RESULT_WRITE_FAILED = "RESULT_WRITE_FAILED"
    FIRESTORE_UNAVAILABLE = Shared.FIRESTORE_UNAVAILABLE.value
    JOB_LEASE_EXPIRED = "JOB_LEASE_EXPIRED"


# Codes a job can only get before its claim, from validation (§4): the input document itself is
# wrong. The command line reports them as "invalid input document" (COMMON.md §9, exit 4).
VALIDATION_CODES = frozenset(
    {
        ErrorCode.JOB_INVALID,
        ErrorCode.USER_ID_MISSING,
        ErrorCode.ENGINE_VERSION_UNSUPPORTED,
        ErrorCode.CONFIG_INVALID,
        ErrorCode.PRICE_PATH_TOO_LONG,
    }
)

CATALOGUE = Catalogue(
    ErrorCode,
    retryable={
        ErrorCode.HISTORY_UNAVAILABLE,
        ErrorCode.TIME_BUDGET_EXCEEDED,
        ErrorCode.RESULT_WRITE_FAILED,
        ErrorCode.FIRESTORE_UNAVAILABLE,
        ErrorCode.JOB_LEASE_EXPIRED,
    },
)


class NoOp(StrEnum):
    """`cloud_event_noop` reasons (§11): the job is left exactly as it was read."""

    ALREADY_FINAL = "already_final"
    ALREADY_RUNNING = "already_running"
    CLAIM_CONFLICT = "claim_conflict"
    FINALIZE_CONFLICT = "finalize_conflict"
    UNKNOWN_STATUS = "unknown_status"


JOB_NOT_FOUND = "job_not_found"  # the `cloud_event_ignored` reason for a missing job
