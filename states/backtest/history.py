"""The daily-close CSV of a `history` job (BACKTEST §6): where it lives and which points it yields.

Pure: the adapter fetches the bytes, this module decides. A format error names the line number
but never quotes the line, because the message is stored on the job and the file is not the
client's to read.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Literal

from wheelsim import MAX_POINTS

HistoryErrorCode = Literal["HISTORY_INVALID", "HISTORY_NOT_FOUND", "PRICE_PATH_TOO_LONG"]

HEADER = "date,close"
MIN_CLOSE = 0.01

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_CLOSE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class HistoryError(Exception):
    """A history object that cannot yield a price path; the job fails with `code`."""

    def __init__(self, code: HistoryErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: HistoryErrorCode = code
        self.message = message


def history_object_name(prefix: str, symbol: str) -> str:
    """`<prefix>/daily/<symbol>.csv`, prefix normalized as SPEC §11 (blank = none, no edge `/`)."""
    normalized = prefix.strip().strip("/")
    name = f"daily/{symbol}.csv"
    return f"{normalized}/{name}" if normalized else name


def select_points(
    data: bytes,
    start: datetime.date,
    end: datetime.date,
    max_bytes: int,
    max_points: int = MAX_POINTS,
) -> tuple[list[float], list[str]]:
    """Closes and dates of the rows with `start <= date <= end`, in file order.

    The whole file is checked, not just the window: a malformed object is an error to fix at its
    source, whichever window happens to be asked for.
    """
    prices: list[float] = []
    dates: list[str] = []
    for day, close in _rows(data, max_bytes):
        if start <= day <= end:
            prices.append(close)
            dates.append(day.isoformat())
    if not prices:
        raise HistoryError("HISTORY_NOT_FOUND", "history: no row between startDate and endDate")
    if len(prices) > max_points:
        raise HistoryError(
            "PRICE_PATH_TOO_LONG",
            f"configUsed.pricePath: more than {max_points} points between startDate and endDate",
        )
    return prices, dates


def _rows(data: bytes, max_bytes: int) -> list[tuple[datetime.date, float]]:
    if len(data) > max_bytes:
        raise _invalid(f"object larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("object is not UTF-8") from None
    lines = _lines(text)
    if not lines or lines[0] != HEADER:
        raise _invalid(f"line 1: header must be exactly {HEADER}")
    rows: list[tuple[datetime.date, float]] = []
    for number, line in enumerate(lines[1:], start=2):
        day, close = _row(number, line)
        if rows and day <= rows[-1][0]:
            raise _invalid(f"line {number}: dates must be strictly increasing")
        rows.append((day, close))
    return rows


def _lines(text: str) -> list[str]:
    """Split on LF or CRLF; one final line ending is allowed, a second one is a blank line."""
    if text.endswith("\n"):
        text = text[:-1]
    if not text:
        return []
    return [line.removesuffix("\r") for line in text.split("\n")]


def _row(number: int, line: str) -> tuple[datetime.date, float]:
    if not line:
        raise _invalid(f"line {number}: blank line")
    fields = line.split(",")
    if len(fields) != 2:
        raise _invalid(f"line {number}: expected date,close")
    raw_date, raw_close = fields
    match = _DATE.fullmatch(raw_date)
    day: datetime.date | None = None
    if match:
        year, month, dom = (int(part) for part in match.groups())
        try:
            day = datetime.date(year, month, dom)
        except ValueError:
            day = None
    if day is None:
        raise _invalid(f"line {number}: date must be a real date YYYY-MM-DD")
    close = float(raw_close) if _CLOSE.fullmatch(raw_close) else math.nan
    if not (math.isfinite(close) and close >= MIN_CLOSE):
        raise _invalid(f"line {number}: close must be a decimal number >= 0.01")
    return day, close


def _invalid(detail: str) -> HistoryError:
    return HistoryError("HISTORY_INVALID", f"history: {detail}")
