"""Wall-clock timestamps in the one format the contracts use (RFC3339, UTC, `Z`), and the
millisecond durations the logs and execution records report."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Microsecond precision keeps claim timestamps distinct between racing instances."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def elapsed_ms(started: float) -> int:
    """Whole milliseconds since `started`, a `time.monotonic()` reading."""
    return max(0, int((time.monotonic() - started) * 1000))


def span_ms(start: datetime, end: datetime) -> int:
    """Whole milliseconds from `start` to `end`; never negative, whatever the clocks did."""
    return max(0, int((end - start).total_seconds() * 1000))
