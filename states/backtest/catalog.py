"""The backtest worker's event catalog and log profile (BACKTEST §11).

The spec's events in its order, then the worker's additions; the engine's shared events
(`cloud_event_received`, `claim_outcome_unknown`, ...) come from `ENGINE_CATALOG`. Every line
names the job (`jobId`) and, once the job is read, a hash of its submitter (`uidHash`), never
the uid; the safety gate refuses the keys that would carry a uid, a config, prices or a result.
"""

from __future__ import annotations

import hashlib

from engine.log import ENGINE_CATALOG, FORBIDDEN_KEYS, LogProfile, normalized_key

EVENTS: dict[str, tuple[str, ...]] = {
    # --- BACKTEST §11, in its order
    "job_validation_failed": ("errorCode", "field"),
    "job_claimed": ("leaseExpiresAt",),
    "history_read_started": ("objectName",),
    "history_read_finished": ("bytes", "points", "durationMs"),
    "engine_started": ("points",),
    "engine_finished": ("points", "cyclesCompleted", "durationMs"),
    "result_write_started": ("bytes",),
    "result_write_finished": ("outcome", "resultSha256"),
    "job_recovered": ("resultSha256",),
    "job_lease_expired": ("leaseDeadline",),
    "job_completed": ("durationMs",),
    "job_failed": ("errorCode",),
    "sweep_finished": ("scanned", "completed", "failed", "skipped"),
    # --- the worker's additions: what went wrong where nothing above says it
    "job_claim_failed": ("reason",),
    "job_finalize_failed": ("reason", "intendedStatus"),
    "history_read_failed": ("errorCode", "attempts"),
    "result_write_failed": ("attempts", "exceptionType"),
    "result_outcome_unknown": ("attempts",),
    "stale_scan_run_failed": ("jobId", "exceptionType"),
}

# BACKTEST §11: never a uid, a config, prices, an equity curve, a result, notes or a stack.
EXTRA_FORBIDDEN = frozenset(
    normalized_key(key)
    for key in (
        "userId",
        "configUsed",
        "pricePath",
        "equityCurve",
        "backtestResult",
        "notes",
        "errorStack",
    )
)

PROFILE = LogProfile(
    service="worker_backtest",
    catalog={**ENGINE_CATALOG, **EVENTS},
    forbidden=FORBIDDEN_KEYS | EXTRA_FORBIDDEN,
    context=("eventId", "jobId", "uidHash"),
    required=("eventId", "jobId"),
)

UID_HASH_CHARS = 12


def uid_hash(uid: str) -> str:
    """What the logs carry instead of a uid: enough to group one user's jobs, not to name them."""
    return hashlib.sha256(uid.encode("utf-8")).hexdigest()[:UID_HASH_CHARS]
