"""RUNNING.prices: the job's price path, `p[i]` with its date `d[i]` (BACKTEST §6).

Inline: the validated `pricePath`, dated one calendar day per point from `startDate`. History:
the daily-close CSV in Cloud Storage, read with a byte bound and at most three tries, then
checked whole and cut to the job's window. Each failure has its catalogued code and a message
starting with `history:` (or `configUsed.pricePath:` for a window over 5000 points) that never
quotes the file.
"""

from __future__ import annotations

import time

from engine.clock import elapsed_ms
from engine.errors import Failure, StoreUnavailable
from engine.lifecycle import Next
from engine.ports import BlobNotFound, BlobTooLarge, BlobUndecodable
from states.backtest.errors import ErrorCode
from states.backtest.history import HistoryError, history_object_name, select_points
from states.backtest.phases import Owned, Priced
from states.backtest.unit import JobUnit
from states.backtest.validation import synthetic_dates

READ_TRIES = 3  # §6: GCS permission or transient errors after 3 tries → HISTORY_UNAVAILABLE


def enter(unit: JobUnit, owned: Owned) -> Next:
    job = owned.job
    if job.inline_prices is not None:
        prices = job.inline_prices
        dates = tuple(synthetic_dates(job.start, len(prices)))
        return "priced", Priced(owned, prices, dates, "inline")
    return "priced", history(unit, owned)


def history(unit: JobUnit, owned: Owned) -> Priced:
    config, job = unit.config, owned.job
    if config.history_bucket is None:
        raise Failure(ErrorCode.HISTORY_UNAVAILABLE, "history: HISTORY_BUCKET is not configured")
    name = history_object_name(config.history_prefix, job.config.symbol)
    started = time.monotonic()
    unit.log.info("history_read_started", objectName=name)
    data = read(unit, f"gs://{config.history_bucket}/{name}", started)
    try:
        prices, dates = select_points(data, job.start, job.end, config.history_max_bytes)
    except HistoryError as exc:
        failed(unit, exc.code, started, 1)
        raise Failure(exc.code, exc.message) from None
    unit.log.info(
        "history_read_finished",
        bytes=len(data),
        points=len(prices),
        durationMs=elapsed_ms(started),
    )
    return Priced(owned, tuple(prices), tuple(dates), "history")


def read(unit: JobUnit, uri: str, started: float) -> bytes:
    limit = unit.config.history_max_bytes
    for attempt in range(1, READ_TRIES + 1):
        unit.budget.require("the history read")  # §10, before every try
        try:
            return unit.ports.history.read(uri, limit)
        except BlobNotFound:
            failed(unit, ErrorCode.HISTORY_NOT_FOUND, started, attempt)
            raise Failure(
                ErrorCode.HISTORY_NOT_FOUND, "history: no daily history object for the symbol"
            ) from None
        except BlobTooLarge:
            failed(unit, ErrorCode.HISTORY_INVALID, started, attempt)
            raise Failure(
                ErrorCode.HISTORY_INVALID, f"history: object larger than {limit} bytes"
            ) from None
        except BlobUndecodable:
            failed(unit, ErrorCode.HISTORY_INVALID, started, attempt)
            raise Failure(
                ErrorCode.HISTORY_INVALID, "history: object's stored encoding does not decode"
            ) from None
        except StoreUnavailable as exc:
            unit.log.warning(
                "history_read_failed",
                errorCode=ErrorCode.HISTORY_UNAVAILABLE,
                attempts=attempt,
                reason=exc.message,
            )
    raise Failure(
        ErrorCode.HISTORY_UNAVAILABLE,
        f"history: Cloud Storage unavailable after {READ_TRIES} tries",
    )


def failed(unit: JobUnit, code: str, started: float, attempts: int) -> None:
    unit.log.warning(
        "history_read_failed", errorCode=code, attempts=attempts, durationMs=elapsed_ms(started)
    )
