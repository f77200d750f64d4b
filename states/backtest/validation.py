"""Validation of a `backtestJobs/{jobId}` document before the claim (BACKTEST §4).

Pure: it only looks at the document's data, so it runs before any write and its verdict is the
same on every delivery. Rules run in the spec's order and the first violation wins, so a client
always sees the same error for the same document. Messages name the offending path and the rule,
never the value (a job's data is the client's, and messages end up in Firestore and logs); the
one exception the spec allows is `engineVersion`, cut to 32 characters.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from wheelsim import MAX_POINTS, SUPPORTED_ENGINE_VERSIONS, SimConfig

ViolationCode = Literal[
    "JOB_INVALID",
    "USER_ID_MISSING",
    "ENGINE_VERSION_UNSUPPORTED",
    "CONFIG_INVALID",
    "PRICE_PATH_TOO_LONG",
]

MAX_USER_ID_CHARS = 128
MAX_STRATEGY_ID_CHARS = 128
MAX_LABEL_CHARS = 200
MAX_STARTING_CAPITAL = 1e12
MAX_CYCLES = 1000
MIN_PRICE = 0.01
MIN_YEAR, MAX_YEAR = 1900, 2099
ECHOED_VERSION_CHARS = 32

# fullmatch, ASCII classes: `$` would accept a trailing newline and `\d` any Unicode digit.
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,15}")
# The origin writes local date-times without offset: only the date part counts.
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T.*)?", re.DOTALL)


@dataclass(frozen=True)
class Violation:
    """The first rule the job breaks: the job is finalized `failed` with `code` and `message`."""

    code: ViolationCode
    field: str
    message: str


@dataclass(frozen=True)
class ValidJob:
    """A job that passed §4, with its config normalized for the engine.

    `inline_prices` is None for `history` jobs: their path is only known after the claim.
    """

    job_id: str
    user_id: str
    config: SimConfig
    inline_prices: tuple[float, ...] | None
    start: datetime.date
    end: datetime.date


class _Invalid(Exception):
    """Raised by a field check; caught once in `validate_job`, so checks stay linear."""

    def __init__(self, code: ViolationCode, field: str, rule: str) -> None:
        super().__init__(field)
        self.violation = Violation(code, field, f"{field}: {rule}")


def validate_job(doc_id: str, data: Mapping[str, Any]) -> ValidJob | Violation:
    try:
        return _validate(doc_id, data)
    except _Invalid as invalid:
        return invalid.violation


def synthetic_dates(start: datetime.date, count: int) -> list[str]:
    """Dates of an inline path (§6): one calendar day per point from `startDate`."""
    return [(start + datetime.timedelta(days=i)).isoformat() for i in range(count)]


def _validate(doc_id: str, data: Mapping[str, Any]) -> ValidJob:
    job_id = data.get("jobId")
    if job_id is not None and job_id != doc_id:
        raise _Invalid("JOB_INVALID", "jobId", "must equal the document id")
    user_id = data.get("userId")
    if not _is_text(user_id, 1, MAX_USER_ID_CHARS):
        raise _Invalid("USER_ID_MISSING", "userId", "must be a string of 1..128 characters")
    _check_engine_version(data.get("engineVersion"))
    config = data.get("configUsed")
    if not isinstance(config, Mapping):
        raise _Invalid("CONFIG_INVALID", "configUsed", "must be a map")
    return _validate_config(doc_id, user_id, config)


def _validate_config(doc_id: str, user_id: str, config: Mapping[str, Any]) -> ValidJob:
    capital = _finite_float(config.get("startingCapital"))
    if capital is None or not 0.0 < capital <= MAX_STARTING_CAPITAL:
        raise _config("startingCapital", "must be a finite number > 0 and <= 1e12")
    max_cycles = config.get("maxCycles")
    if not _is_int(max_cycles) or not 1 <= max_cycles <= MAX_CYCLES:
        raise _config("maxCycles", "must be an integer from 1 to 1000")
    strategy_id = config.get("strategyId")
    if not _is_text(strategy_id, 1, MAX_STRATEGY_ID_CHARS):
        raise _config("strategyId", "must be a string of 1..128 characters")
    label = config.get("label")
    if label is not None and not _is_text(label, 0, MAX_LABEL_CHARS):
        raise _config("label", "must be absent, null or a string of at most 200 characters")
    symbol = config.get("symbol")
    if not (isinstance(symbol, str) and _SYMBOL.fullmatch(symbol)):
        raise _config("symbol", "must match ^[A-Z0-9][A-Z0-9._-]{0,15}$")
    start = _date(config.get("startDate"), "startDate")
    end = _date(config.get("endDate"), "endDate")
    if end < start:
        raise _config("endDate", "must not be before startDate")
    data_source = _data_source(config.get("dataSource"))
    prices = _price_path(config.get("pricePath"), data_source)
    return ValidJob(
        job_id=doc_id,
        user_id=user_id,
        config=SimConfig(
            starting_capital=capital,
            max_cycles=max_cycles,
            strategy_id=strategy_id,
            label=label,
            symbol=symbol,
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            data_source=data_source,
        ),
        inline_prices=prices,
        start=start,
        end=end,
    )


def _check_engine_version(version: Any) -> None:
    if isinstance(version, str) and version in SUPPORTED_ENGINE_VERSIONS:
        return
    supported = ", ".join(SUPPORTED_ENGINE_VERSIONS)
    if isinstance(version, str):
        # json.dumps quotes the echo and escapes control characters: it stays one plain line.
        echo = json.dumps(version[:ECHOED_VERSION_CHARS], ensure_ascii=False)
        rule = f"{echo} is not supported (supported: {supported})"
    else:
        rule = f"must be a string, one of: {supported}"
    raise _Invalid("ENGINE_VERSION_UNSUPPORTED", "engineVersion", rule)


def _date(value: Any, name: str) -> datetime.date:
    parsed = _calendar_date(value)
    if parsed is None or not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise _config(name, "must be a real date YYYY-MM-DD (year 1900..2099) or a timestamp")
    return parsed


def _calendar_date(value: Any) -> datetime.date | None:
    """The date of `YYYY-MM-DD[T...]` or of a Firestore timestamp (its UTC date), if any.

    The Firestore client returns timestamps as `DatetimeWithNanoseconds`, a `datetime` subclass.
    """
    try:
        if isinstance(value, datetime.datetime):
            return (value.astimezone(datetime.UTC) if value.tzinfo is not None else value).date()
        if isinstance(value, str) and (match := _DATE.fullmatch(value)):
            year, month, day = (int(part) for part in match.groups())
            return datetime.date(year, month, day)
    except (ValueError, OverflowError):  # no such day; an offset pushing year 1 off the calendar
        return None
    return None


def _data_source(value: Any) -> Literal["inline", "history"]:
    if value is None or value == "inline":
        return "inline"
    if value == "history":
        return "history"
    raise _config("dataSource", "must be absent, null, inline or history")


def _price_path(value: Any, data_source: str) -> tuple[float, ...] | None:
    field = "pricePath"
    if data_source == "history":
        if value is None or (isinstance(value, list) and not value):
            return None
        raise _config(field, "must be absent, null or empty when dataSource is history")
    if not isinstance(value, list) or not value:
        raise _config(field, "must be a non-empty list of prices")
    if len(value) > MAX_POINTS:
        raise _Invalid(
            "PRICE_PATH_TOO_LONG", f"configUsed.{field}", f"more than {MAX_POINTS} prices"
        )
    prices: list[float] = []
    for i, item in enumerate(value):
        price = _finite_float(item)
        if price is None or price < MIN_PRICE:
            raise _config(f"{field}[{i}]", "must be a finite number >= 0.01")
        prices.append(price)
    return tuple(prices)


def _config(name: str, rule: str) -> _Invalid:
    return _Invalid("CONFIG_INVALID", f"configUsed.{name}", rule)


def _finite_float(value: Any) -> float | None:
    """An integer or double as a finite double; booleans are ints in Python, but not numbers here.

    NaN and ±Infinity arrive as Firestore doubles; an integer too large for a double has none.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any, min_chars: int, max_chars: int) -> TypeGuard[str]:
    return isinstance(value, str) and min_chars <= len(value) <= max_chars
