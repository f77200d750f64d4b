"""The job document `backtestJobs/{jobId}` as the worker reads it (BACKTEST §1, §2).

Only what the dispatch needs is typed here: the status (the legacy alias read as its plain
value) and the submitter; validation (§4) reads the rest from the data itself, because a job
must be judged on exactly what the client stored, unknown fields and odd types included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from engine.clock import parse_rfc3339
from engine.ports import JsonObject, Path

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

QUEUED: Final = "queued"
RUNNING: Final = "running"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED)
LEGACY_PREFIX = "CloudBacktestStatus."  # the origin client's Dart `enum.toString()`

STATUS: Path = ("status",)
STARTED_AT: Path = ("startedAt",)
LEASE_EXPIRES_AT: Path = ("leaseExpiresAt",)


def spellings(status: str) -> frozenset[str]:
    """Every stored form a gate must accept for `status` (the worker writes only the first)."""
    return frozenset({status, f"{LEGACY_PREFIX}{status}"})


def canonical_status(value: Any) -> str | None:
    """`queued` for `queued` and `CloudBacktestStatus.queued`; None for anything else."""
    if not isinstance(value, str):
        return None
    plain = value.removeprefix(LEGACY_PREFIX)
    return plain if plain in STATUSES else None


@dataclass(frozen=True)
class Job:
    """One job as read: its data untouched, its status in the canonical vocabulary."""

    job_id: str
    data: JsonObject
    status: str | None  # None: a status outside the vocabulary (`unknown_status`)

    @property
    def user_id(self) -> str | None:
        uid = self.data.get("userId")
        return uid if isinstance(uid, str) and uid else None


def timestamp(value: Any) -> datetime | None:
    """A worker timestamp as an aware UTC datetime: a Firestore timestamp (a `datetime`), or an
    RFC 3339 string as older writers stored it; anything else is no time at all. A time without
    an offset is taken as UTC, the only zone the worker writes."""
    moment = parse_rfc3339(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
