"""The CHART_EXPORT worker's error catalogue (CHART_EXPORT §13), with the codes the engine shares.

Retryability matters here beyond documentation: the step code of a missed `minImages` is chosen
by it (§11), so the set below is part of the worker's behaviour, not a comment.
"""

from __future__ import annotations

from enum import StrEnum

from engine.errors import Catalogue, Shared


class ErrorCode(StrEnum):
    """Stable `error.code` values written on CHART_EXPORT steps and in manifest failures."""

    FLOW_RUN_NOT_FOUND = "FLOW_RUN_NOT_FOUND"
    FLOW_RUN_INVALID = "FLOW_RUN_INVALID"
    INVALID_STEP_INPUTS = "INVALID_STEP_INPUTS"
    CHART_TEMPLATE_NOT_FOUND = "CHART_TEMPLATE_NOT_FOUND"
    CHART_TEMPLATE_INVALID = "CHART_TEMPLATE_INVALID"
    CHART_API_REJECTED = "CHART_API_REJECTED"
    CHART_API_FAILED = "CHART_API_FAILED"
    CHART_API_LIMIT_EXCEEDED = "CHART_API_LIMIT_EXCEEDED"
    CHART_API_MOCK_MISSING = "CHART_API_MOCK_MISSING"
    GCS_WRITE_FAILED = Shared.GCS_WRITE_FAILED.value
    TIME_BUDGET_EXCEEDED = Shared.TIME_BUDGET_EXCEEDED.value
    FIRESTORE_UNAVAILABLE = Shared.FIRESTORE_UNAVAILABLE.value
    MANIFEST_WRITE_FAILED = "MANIFEST_WRITE_FAILED"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    STEP_LEASE_EXPIRED = "STEP_LEASE_EXPIRED"
    FIRESTORE_CLAIM_FAILED = Shared.FIRESTORE_CLAIM_FAILED.value
    FIRESTORE_FINALIZE_FAILED = Shared.FIRESTORE_FINALIZE_FAILED.value
    WORKER_INTERNAL_ERROR = Shared.WORKER_INTERNAL_ERROR.value


CATALOGUE = Catalogue(
    ErrorCode,
    retryable={
        ErrorCode.CHART_API_FAILED,
        ErrorCode.CHART_API_LIMIT_EXCEEDED,  # the next UTC day
        ErrorCode.GCS_WRITE_FAILED,
        ErrorCode.FIRESTORE_UNAVAILABLE,
        ErrorCode.MANIFEST_WRITE_FAILED,
        ErrorCode.STEP_LEASE_EXPIRED,
        ErrorCode.FIRESTORE_CLAIM_FAILED,
        ErrorCode.FIRESTORE_FINALIZE_FAILED,
    },
)

# The codes a step of this worker may carry: the finalize patch schema's enum. The engine's
# shared GCS_READ_FAILED is not among them, so no state may let it reach a step.
STEP_CODES = frozenset(
    str(code) for code in ErrorCode if code not in (ErrorCode.FLOW_RUN_NOT_FOUND,)
) - {ErrorCode.FLOW_RUN_INVALID}


def retryable(code: str) -> bool:
    return code in CATALOGUE.retryable
