"""The Chart-IMG port of the CHART_EXPORT worker and the rules that need no I/O.

Everything the spec (docs/spec/CHART_EXPORT.md) states as a table lives here as data — plans (§6),
timeframes (§5) — together with the pure decisions made on a provider answer: classification
(§6), the provider message (§6), `Retry-After` (§8) and the fixture stem (§14). Adapters do the
I/O and hand their observations to these functions, so real, mock and record modes classify
identically and the rules can be tested without a network. Nothing here imports `adapters`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol

# --- §6 plans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """One Chart-IMG subscription plan: the limits the provider enforces per account."""

    name: str
    requests_per_second: int
    daily_max: int
    max_width: int
    max_height: int
    max_studies_drawings: int


PLANS: Mapping[str, Plan] = MappingProxyType(
    {
        plan.name: plan
        for plan in (
            Plan("BASIC", 1, 50, 800, 600, 3),
            Plan("PRO", 10, 500, 1920, 1080, 5),
            Plan("MEGA", 15, 1000, 1920, 1600, 10),
            Plan("ULTRA", 35, 3000, 2048, 1920, 25),
            Plan("ENTERPRISE", 35, 5000, 2048, 1920, 50),
        )
    }
)

# Chart-IMG's own defaults when a body omits the size; a template without `width` is checked
# against the plan with these, exactly as the provider would render it.
DEFAULT_WIDTH = 800
DEFAULT_HEIGHT = 600

# --- §5 symbol and timeframes --------------------------------------------------------------------

CHART_IMG_SYMBOL_RE = re.compile(r"^[A-Z0-9_]+:[A-Za-z0-9._!-]+$")


class Timeframe(NamedTuple):
    """A flow-run timeframe's two other spellings: the Chart-IMG interval and the fixture token.

    The token exists because `1m` (minute) and `1M` (month) would collide as file names on
    case-insensitive disks; it never reaches the provider.
    """

    interval: str
    token: str


def _timeframes() -> dict[str, Timeframe]:
    table: dict[str, Timeframe] = {}
    for minutes in ("1", "3", "5", "15", "30", "45"):
        table[f"{minutes}m"] = Timeframe(f"{minutes}m", f"{minutes}min")
    for hours in ("1", "2", "3", "4", "6", "8", "12"):
        table[f"{hours}h"] = Timeframe(f"{hours}h", f"{hours}h")
    # Days, weeks and years: Chart-IMG wants the upper-case unit, the flow run may use either.
    for count, unit in (("1", "d"), ("2", "d"), ("3", "d"), ("1", "w"), ("1", "y")):
        mapped = Timeframe(f"{count}{unit.upper()}", f"{count}{unit}")
        table[f"{count}{unit}"] = mapped
        table[f"{count}{unit.upper()}"] = mapped
    # Months exist only upper-case: a lower-case `1m` is the minute row above.
    for months in ("1", "3", "6"):
        table[f"{months}M"] = Timeframe(f"{months}M", f"{months}mon")
    return table


TIMEFRAMES: Mapping[str, Timeframe] = MappingProxyType(_timeframes())
"""Flow-run spelling → (Chart-IMG interval, fixture token). Case-sensitive; nothing is folded."""

CHART_IMG_INTERVALS: frozenset[str] = frozenset(tf.interval for tf in TIMEFRAMES.values())
"""The intervals this worker can send (the Chart-IMG column of §5)."""

# --- the port ------------------------------------------------------------------------------------

AttemptKind = Literal[
    "ok",
    "invalid_image",
    "limit_exceeded",
    "rate_limited",
    "server_error",
    "network_error",
    "timeout",
    "rejected",
    "fixture_missing",
]

InvalidImageReason = Literal["content_type", "not_png", "empty", "too_large"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SERVER_ERROR_STATUSES = frozenset({500, 502, 503, 504})
ERROR_BODY_HEAD_BYTES = 4096
PROVIDER_MESSAGE_MAX_CHARS = 200
REDACTED = "[redacted]"


@dataclass(frozen=True)
class ChartRequest:
    """One render as sent: which template, for which symbol and interval, and the final body.

    `token` is the §5 fixture token of the step's timeframe; it only names fixture files.
    """

    chart_template_id: str
    chart_img_symbol: str
    interval: str
    token: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Account:
    """A Chart-IMG account from the secret. The key is excluded from repr so it never prints."""

    id: str
    api_key: str = field(repr=False)
    daily_limit: int | None = None


@dataclass(frozen=True)
class ChartAttempt:
    """The classified outcome of one HTTP request (or one fixture lookup in mock mode).

    `png` is set only for `ok`; `reason` only for `invalid_image`; `provider_message` is the
    sanitized ≤ 200-character message of an error body, never the body itself. `bytes` counts the
    body bytes read (at most the cap + 1 for images), `duration_ms` the attempt's wall time.
    """

    kind: AttemptKind
    http_status: int | None
    png: bytes | None = field(default=None, repr=False)
    reason: InvalidImageReason | None = None
    retry_after_s: float | None = None
    provider_message: str | None = None
    bytes: int = 0
    duration_ms: int = 0


class ChartApi(Protocol):
    """Renders one chart. `account` is None in mock mode (and for record-mode replays).

    Implementations return every provider answer, network failure and timeout as a
    `ChartAttempt`; the whole call ends within `timeout_s`.
    """

    def render(
        self, request: ChartRequest, account: Account | None, timeout_s: float
    ) -> ChartAttempt: ...


# --- pure decisions ------------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    """`image/png; charset=…` → `image/png`: parameters and case do not change the type."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def classify(
    status: int,
    content_type: str | None,
    head: bytes,
    size: int,
    over_cap: bool,
    message: str | None,
) -> tuple[AttemptKind, InvalidImageReason | None]:
    """The §6 classification table, first matching row wins.

    `head` is the start of the body (at least the 8 magic bytes when there are that many),
    `size` the number of body bytes read, `over_cap` whether the body went past
    `CHART_IMG_MAX_PNG_BYTES`, `message` the sanitized provider message.

    The spec lists the `invalid_image` reasons without an order; they are checked so that each
    one can occur: a wrong content type first (the body is then irrelevant), then an empty body
    (which is also "not a PNG", but the more useful diagnosis), then the magic bytes, then the cap.
    """
    if status == 200:
        if media_type(content_type) != "image/png":
            return "invalid_image", "content_type"
        if size == 0:
            return "invalid_image", "empty"
        if not head.startswith(PNG_MAGIC):
            return "invalid_image", "not_png"
        if over_cap:
            return "invalid_image", "too_large"
        return "ok", None
    if status == 429:
        if message is not None and "limit exceeded" in message.casefold():
            return "limit_exceeded", None
        return "rate_limited", None
    if status in SERVER_ERROR_STATUSES:
        return "server_error", None
    return "rejected", None


def _text(value: Any) -> str | None:
    """A JSON value usable as message text: non-empty strings, and numbers spelled out."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _first_item_text(items: Any) -> str | None:
    """`msg` and `param` of the first item of a validation-error list (`msg (param)`)."""
    if not isinstance(items, list) or not items or not isinstance(items[0], Mapping):
        return None
    msg, param = _text(items[0].get("msg")), _text(items[0].get("param"))
    if msg and param:
        return f"{msg} ({param})"
    return msg or param


def _extract_message(body: Any) -> str | None:
    if isinstance(body, list):
        return _first_item_text(body)
    if not isinstance(body, Mapping):
        return None
    for name in ("message", "error"):
        text = _text(body.get(name))
        if text is not None:
            return text
    nested = body.get("error")
    if isinstance(nested, Mapping):  # {"error": {"message": …}}
        text = _text(nested.get("message"))
        if text is not None:
            return text
    for name in ("errors", "message", "error"):
        text = _first_item_text(body.get(name))
        if text is not None:
            return text
    return None


def sanitize_message(text: str, *, redact: Iterable[str] = ()) -> str | None:
    """One line of printable text, secrets replaced, at most 200 characters; None if empty.

    Redaction happens before truncation, so a cut can never leave part of a secret behind.
    """
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    for secret in redact:
        if secret:
            cleaned = cleaned.replace(secret, REDACTED)
    cleaned = cleaned[:PROVIDER_MESSAGE_MAX_CHARS].rstrip()
    return cleaned or None


def provider_message(body_head: bytes, *, redact: Iterable[str] = ()) -> str | None:
    """The provider's error message from a JSON error body, per §6.

    Only the first 4096 bytes are looked at; a body cut there is not valid JSON and gives None,
    as does any non-JSON body: raw bodies are never turned into messages. The message is
    `message`, else `error`, else the first item's `msg` and `param` (of a top-level list or of
    an `errors` array), sanitized by `sanitize_message`. `redact` names strings (the API key
    just used) that must not survive even if the provider echoes them.
    """
    head = body_head[:ERROR_BODY_HEAD_BYTES]
    if not head.strip():
        return None
    try:
        body = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    text = _extract_message(body)
    return sanitize_message(text, redact=redact) if text is not None else None


_DELTA_SECONDS = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?$")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` in seconds from now: delta-seconds or an HTTP-date (§8).

    Invalid values are ignored (None); anything in the past, or a negative delay, is 0. A date
    without a zone is GMT, as HTTP dates always are; a naive `now` is taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.match(text):
        seconds = float(text)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return max(0.0, (when - reference).total_seconds())


def fixture_stem(request: ChartRequest) -> str:
    """`<chartImgSymbol with ":" → "_">__<token>__<chartTemplateId>` (§14)."""
    symbol = request.chart_img_symbol.replace(":", "_")
    return f"{symbol}__{request.token}__{request.chart_template_id}"
