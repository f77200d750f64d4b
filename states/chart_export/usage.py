"""Per-account daily Chart-IMG quota: the rules of CHART_EXPORT §7, without any I/O.

A usage document `chart_img_accounts_usage/{accountId}` counts the reservations (one per HTTP
attempt, never refunded) committed in the current UTC day. Everything that decides *what* to
write lives here, so the Firestore store and the in-memory store (`record` mode, local runs)
cannot drift apart; the adapters only decide *how* a write is made conditional.

Field shapes follow `contracts/chart_export/chart_img_account_usage.schema.json`, which the spec
says wins on shapes: `windowStart` is the RFC3339 string `YYYY-MM-DDT00:00:00Z`, `updatedAt` and
`exhaustedAt` RFC3339 UTC strings. Reading is lenient: a `windowStart` stored as a Firestore
timestamp (a `datetime`) by some other writer is understood too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Final, Protocol, TypeAlias

from engine.clock import rfc3339

UNREADABLE_COUNT: Final = 2**63 - 1
"""What `count_today` returns for a count it cannot trust in today's window.

It is Firestore's largest integer, so it is at or above every limit: an account whose counter is
garbage is treated as used up until the next UTC midnight (or until `mark_exhausted` or an
operator rewrites the field), rather than as fresh. Under-using one account for at most a day is
harmless; sending requests past a limit we can no longer see is what the counter exists to stop.
"""

MAX_ATTEMPTS: Final = 5
"""Read-and-write rounds per reservation before giving up on a contended account (§7 step 5)."""

JITTER_S: Final = (0.020, 0.200)
"""Bounds of the uniform pause after a lost race (§7 step 5)."""


def utc_midnight(now: datetime) -> datetime:
    """The UTC midnight that starts `now`'s day: the window of every count.

    A naive `now` is refused rather than guessed: read as local time it would shift the window
    by the host's offset, and a wrong window resets or freezes counters.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("utc_midnight needs a timezone-aware datetime")
    return datetime.combine(now.astimezone(UTC).date(), time(0, 0), tzinfo=UTC)


def window_start_text(now: datetime) -> str:
    """`windowStart` as the schema spells it: `YYYY-MM-DDT00:00:00Z`, no fraction, no offset."""
    return utc_midnight(now).strftime("%Y-%m-%dT00:00:00Z")


def _parse_window(value: Any) -> datetime | None:
    """An aware instant from a Firestore timestamp or an RFC3339 string; anything else is None."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None  # no offset: the instant is unknown, so it is not today's midnight
    return moment


def _parse_count(value: Any) -> int | None:
    """A trustworthy count: an int ≥ 0, or a float with an integral value ≥ 0 (what a console
    edit or another SDK may store). Negative, fractional, NaN, infinite, bool, text: None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    return None


def count_today(doc: Mapping[str, Any] | None, today: datetime) -> int:
    """Reservations already committed today according to the usage document.

    A `windowStart` other than today's UTC midnight (missing, unparsable, without an offset,
    older or newer) means a new window: 0, whatever `usageToday` says. Within today's window a
    `usageToday` that is not a count (see `_parse_count`) gives `UNREADABLE_COUNT`, which no
    limit passes: garbage never reads as spare quota. The result is never below 0.
    `today` may be any moment of the day; its UTC midnight is used.
    """
    if doc is None:
        return 0
    window = _parse_window(doc.get("windowStart"))
    if window is None or window != utc_midnight(today):
        return 0
    count = _parse_count(doc.get("usageToday"))
    return UNREADABLE_COUNT if count is None else count


def effective_limit(
    doc_limit: Any, secret_limit: int | None, default_limit: int, plan_max: int
) -> int:
    """The account's limit today: the document's operator-owned `dailyLimit` when it is an
    integer ≥ 0 (a bool is not), else the secret's, else the configured default; never above the
    plan's daily max and never below 0. A limit of 0 disables the account.

    A `dailyLimit` of the wrong type is ignored rather than trusted, falling back to the
    configured limits, which the plan's cap bounds anyway.
    """
    if isinstance(doc_limit, int) and not isinstance(doc_limit, bool) and doc_limit >= 0:
        limit = doc_limit
    elif secret_limit is not None and secret_limit >= 0:
        limit = secret_limit
    else:
        limit = default_limit
    return max(0, min(limit, plan_max))


@dataclass(frozen=True)
class Reserved:
    """A committed reservation: the request may be sent. `usage_today` is this reservation's
    number in the day (1-based), unique among all reservations of the account that day."""

    usage_today: int
    daily_limit: int


@dataclass(frozen=True)
class AtLimit:
    """The account has no quota left today (or is disabled); nothing was written.
    `usage_today` is the count as read, `UNREADABLE_COUNT` when the stored one is garbage."""

    usage_today: int
    daily_limit: int


@dataclass(frozen=True)
class Contended:
    """Every one of `attempts` conditional writes lost a race: skip the account this attempt
    (`chart_img_reservation_conflict`); it is not exhausted."""

    attempts: int


Reservation: TypeAlias = Reserved | AtLimit | Contended


class UsageStore(Protocol):
    """Per-account daily reservations. The default limit and the plan's daily max are given to
    the store's constructor; the secret's per-account limit comes with each call."""

    def reserve(self, account_id: str, secret_limit: int | None, now: datetime) -> Reservation:
        """Reserves one attempt on the account, or says why not. Only a `Reserved` result
        allows a request to be sent. Raises `StoreUnavailable` when the store cannot be
        reached, or when a write's outcome is unknown (counted as not reserved)."""
        ...

    def mark_exhausted(self, account_id: str, secret_limit: int | None, now: datetime) -> bool:
        """Records a provider `Limit Exceeded`: today's count becomes at least the limit.
        Returns whether that was written (False after `MAX_ATTEMPTS` lost races); raises
        `StoreUnavailable` as `reserve` does. The caller logs failures and treats the account
        as exhausted until the next UTC midnight either way."""
        ...


def decide_reservation(
    doc: Mapping[str, Any] | None,
    secret_limit: int | None,
    default_limit: int,
    plan_max: int,
    now: datetime,
) -> Reserved | AtLimit:
    """What one round of §7 would do with this version of the document: `AtLimit` (write
    nothing), or the `Reserved` it would become once `reservation_fields` for its number are
    committed conditionally on that same version. A disabled account (limit 0) is `AtLimit`
    even when its document is missing, so no document is created for it."""
    limit = effective_limit(
        None if doc is None else doc.get("dailyLimit"), secret_limit, default_limit, plan_max
    )
    count = count_today(doc, now)
    if count >= limit:
        return AtLimit(usage_today=count, daily_limit=limit)
    return Reserved(usage_today=count + 1, daily_limit=limit)


def reservation_fields(usage_today: int, now: datetime) -> dict[str, Any]:
    """The three fields a reservation writes (create-only when missing, else a field update, so
    unknown fields and the operator's `dailyLimit` are left as they are)."""
    return {
        "usageToday": usage_today,
        "windowStart": window_start_text(now),
        "updatedAt": rfc3339(now),
    }


def exhausted_fields(
    doc: Mapping[str, Any] | None,
    secret_limit: int | None,
    default_limit: int,
    plan_max: int,
    now: datetime,
) -> dict[str, Any]:
    """The fields `mark_exhausted` writes: `usageToday = max(count, limit)` so no instance
    reserves the account again today, and it never lowers a count. An unreadable count is
    replaced by the limit, which repairs the field."""
    limit = effective_limit(
        None if doc is None else doc.get("dailyLimit"), secret_limit, default_limit, plan_max
    )
    count = count_today(doc, now)
    stamp = rfc3339(now)
    return {
        "usageToday": limit if count == UNREADABLE_COUNT else max(count, limit),
        "windowStart": window_start_text(now),
        "exhaustedAt": stamp,
        "updatedAt": stamp,
    }
