"""Pure rules of the Chart-IMG port: tables, classification, messages, Retry-After, stems."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from states.chart_export.chart_api import (
    CHART_IMG_INTERVALS,
    PLANS,
    PNG_MAGIC,
    TIMEFRAMES,
    Account,
    AttemptKind,
    ChartAttempt,
    ChartRequest,
    Plan,
    classify,
    fixture_stem,
    parse_retry_after,
    provider_message,
)

from .helpers import KEY_1

NOW = datetime(2025, 12, 15, 10, 25, 30, tzinfo=UTC)
PNG_HEAD = PNG_MAGIC + b"\x00\x00\x00\rIHDR"

# --- §6 plans ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rps", "daily", "width", "height", "params"),
    [
        ("BASIC", 1, 50, 800, 600, 3),
        ("PRO", 10, 500, 1920, 1080, 5),
        ("MEGA", 15, 1000, 1920, 1600, 10),
        ("ULTRA", 35, 3000, 2048, 1920, 25),
        ("ENTERPRISE", 35, 5000, 2048, 1920, 50),
    ],
)
def test_plan_table_row(
    name: str, rps: int, daily: int, width: int, height: int, params: int
) -> None:
    assert PLANS[name] == Plan(name, rps, daily, width, height, params)


def test_plans_are_exactly_the_five_of_the_spec_and_immutable() -> None:
    assert set(PLANS) == {"BASIC", "PRO", "MEGA", "ULTRA", "ENTERPRISE"}
    with pytest.raises(TypeError):
        PLANS["FREE"] = PLANS["BASIC"]  # type: ignore[index]


# --- §5 timeframes -------------------------------------------------------------------------------

SPEC_TIMEFRAMES = {
    "1m": ("1m", "1min"),
    "3m": ("3m", "3min"),
    "5m": ("5m", "5min"),
    "15m": ("15m", "15min"),
    "30m": ("30m", "30min"),
    "45m": ("45m", "45min"),
    "1h": ("1h", "1h"),
    "2h": ("2h", "2h"),
    "3h": ("3h", "3h"),
    "4h": ("4h", "4h"),
    "6h": ("6h", "6h"),
    "8h": ("8h", "8h"),
    "12h": ("12h", "12h"),
    "1d": ("1D", "1d"),
    "1D": ("1D", "1d"),
    "2d": ("2D", "2d"),
    "2D": ("2D", "2d"),
    "3d": ("3D", "3d"),
    "3D": ("3D", "3d"),
    "1w": ("1W", "1w"),
    "1W": ("1W", "1w"),
    "1M": ("1M", "1mon"),
    "3M": ("3M", "3mon"),
    "6M": ("6M", "6mon"),
    "1y": ("1Y", "1y"),
    "1Y": ("1Y", "1y"),
}


@pytest.mark.parametrize(("flow_run", "expected"), sorted(SPEC_TIMEFRAMES.items()))
def test_timeframe_row(flow_run: str, expected: tuple[str, str]) -> None:
    mapped = TIMEFRAMES[flow_run]
    assert (mapped.interval, mapped.token) == expected


def test_timeframes_hold_exactly_the_spec_rows() -> None:
    assert set(TIMEFRAMES) == set(SPEC_TIMEFRAMES)


@pytest.mark.parametrize(
    "spelling", ["1H", "2w", "10m", "1mo", "1mon", "1MIN", "3y", "1", "", " 1d", "1d ", "12H", "6m"]
)
def test_other_spellings_are_not_accepted(spelling: str) -> None:
    assert spelling not in TIMEFRAMES


def test_minutes_and_months_differ_by_case_only_and_are_never_folded() -> None:
    assert TIMEFRAMES["1m"].interval == "1m"
    assert TIMEFRAMES["1M"].interval == "1M"
    assert TIMEFRAMES["3m"].interval == "3m"
    assert TIMEFRAMES["3M"].interval == "3M"


def test_tokens_stay_distinct_on_case_insensitive_disks() -> None:
    by_token: dict[str, str] = {}
    for mapped in TIMEFRAMES.values():
        assert by_token.setdefault(mapped.token.lower(), mapped.interval) == mapped.interval


def test_chart_img_intervals_are_the_mapped_column() -> None:
    assert {interval for interval, _ in SPEC_TIMEFRAMES.values()} == CHART_IMG_INTERVALS
    assert "1d" not in CHART_IMG_INTERVALS  # Chart-IMG rejects the lower-case day


# --- §6 classification ---------------------------------------------------------------------------

CAP = 1000


def _classify(
    status: int,
    content_type: str | None = "image/png",
    body: bytes = PNG_HEAD,
    over_cap: bool = False,
    message: str | None = None,
) -> tuple[AttemptKind, str | None]:
    return classify(status, content_type, body[:16], len(body), over_cap, message)


@pytest.mark.parametrize("content_type", ["image/png", "IMAGE/PNG", "image/png; charset=binary"])
def test_200_png_within_cap_is_ok(content_type: str) -> None:
    assert _classify(200, content_type) == ("ok", None)


@pytest.mark.parametrize(
    ("content_type", "body", "over_cap", "reason"),
    [
        ("text/html", b"<html>busy</html>", False, "content_type"),
        ("application/json", b'{"message": "ok"}', False, "content_type"),
        (None, PNG_HEAD, False, "content_type"),
        ("image/pngx", PNG_HEAD, False, "content_type"),
        ("text/html", b"", False, "content_type"),  # a wrong type wins over everything else
        ("image/png", b"", False, "empty"),
        ("image/png", b"GIF89a....", False, "not_png"),
        ("image/png", PNG_MAGIC[:7], False, "not_png"),
        ("image/png", b"not a png" * 200, True, "not_png"),  # the magic is checked before size
        ("image/png", PNG_HEAD, True, "too_large"),
    ],
)
def test_any_other_200_is_an_invalid_image_with_its_reason(
    content_type: str | None, body: bytes, over_cap: bool, reason: str
) -> None:
    assert _classify(200, content_type, body, over_cap) == ("invalid_image", reason)


@pytest.mark.parametrize(
    "message",
    ["Limit Exceeded", "LIMIT EXCEEDED", "limit exceeded", "Daily limit exceeded (BASIC)"],
)
def test_429_with_limit_exceeded_in_any_case_is_limit_exceeded(message: str) -> None:
    assert _classify(429, "application/json", b"{}", message=message) == ("limit_exceeded", None)


@pytest.mark.parametrize("message", ["Too Many Requests", None, "limit", "Exceeded limit"])
def test_other_429_is_rate_limited(message: str | None) -> None:
    assert _classify(429, "application/json", b"{}", message=message) == ("rate_limited", None)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_of_the_retry_set_is_server_error(status: int) -> None:
    assert _classify(status, "application/json", b"{}") == ("server_error", None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501, 505, 418, 302, 201, 204])
def test_every_other_status_is_rejected(status: int) -> None:
    assert _classify(status, "application/json", b"{}") == ("rejected", None)


def test_limit_exceeded_wording_only_counts_on_a_429() -> None:
    """The original burned an account on "limit exceeded" with any status."""
    assert _classify(403, "application/json", b"{}", message="Limit Exceeded") == (
        "rejected",
        None,
    )


# --- §6 provider message -------------------------------------------------------------------------


def _body(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "Invalid Interval"}, "Invalid Interval"),
        ({"message": "Limit Exceeded", "error": "ignored"}, "Limit Exceeded"),
        ({"error": "Unauthorized"}, "Unauthorized"),
        ({"message": "", "error": "Unauthorized"}, "Unauthorized"),
        ({"error": {"message": "nested"}}, "nested"),
        ([{"msg": "Invalid value", "param": "interval"}], "Invalid value (interval)"),
        (
            {"errors": [{"msg": "Invalid value", "param": "width"}, {"msg": "x"}]},
            "Invalid value (width)",
        ),
        ([{"param": "symbol"}], "symbol"),
        ([{"msg": "Required"}], "Required"),
        ({"message": 429}, "429"),
    ],
)
def test_provider_message_fields_in_order(body: object, expected: str) -> None:
    assert provider_message(_body(body)) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<html><body>Limit Exceeded</body></html>",
        b"Limit Exceeded",
        b'"just a string"',
        b"[]",
        b"{}",
        b'{"message": null, "error": false}',
        b"\xff\xfe{}",
        _body([1, 2]),
    ],
)
def test_no_provider_message_without_one_in_a_json_body(body: bytes) -> None:
    assert provider_message(body) is None


def test_only_the_first_4096_bytes_are_read_so_a_longer_body_gives_none() -> None:
    long_body = _body({"message": "Limit Exceeded", "padding": "x" * 5000})
    assert len(long_body) > 4096
    assert provider_message(long_body) is None
    fits = _body({"message": "Limit Exceeded", "padding": "x" * 3000})
    assert provider_message(fits) == "Limit Exceeded"


def test_provider_message_is_one_sanitized_line_of_at_most_200_characters() -> None:
    message = provider_message(_body({"message": "line one\nline\ttwo\x00\x1b[31m " + "y" * 400}))
    assert message is not None
    assert len(message) == 200
    assert message.startswith("line one line two [31m y")
    assert all(ch.isprintable() for ch in message)


def test_provider_message_redacts_a_secret_before_truncating() -> None:
    # The key straddles the 200-character cut: truncating first would leave a prefix of it.
    text = "k" * 190 + KEY_1 + " tail"
    message = provider_message(_body({"message": text}), redact=(KEY_1,))
    assert message is not None
    assert KEY_1[:10] not in message
    assert "[redacted]" in message
    echoed = provider_message(_body({"message": f"bad key {KEY_1}"}), redact=(KEY_1,))
    assert echoed == "bad key [redacted]"


# --- §8 Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("+2", 2.0),
        ("999999", 999999.0),
    ],
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_http_date_in_the_future_is_the_distance() -> None:
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(when, NOW) == 90.0


@pytest.mark.parametrize(
    "value",
    ["Mon, 15 Dec 2025 10:26:00 GMT", "Monday, 15-Dec-25 10:26:00 GMT", "Mon Dec 15 10:26:00 2025"],
)
def test_retry_after_accepts_the_three_http_date_forms(value: str) -> None:
    assert parse_retry_after(value, NOW) == 30.0


def test_retry_after_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Mon, 15 Dec 2025 10:00:00 GMT", NOW) == 0.0


def test_retry_after_with_a_naive_now_is_taken_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Mon, 15 Dec 2025 10:26:00 GMT", naive) == 30.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "1e3", "nan", "inf", "5s", "0x10"])
def test_invalid_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# --- §14 fixture stem and the value types --------------------------------------------------------


def test_fixture_stem_example_of_the_spec() -> None:
    tf = TIMEFRAMES["1M"]
    request = ChartRequest("ctpl_price_ma1226_vol_v1", "BINANCE:BTCUSDT", tf.interval, tf.token, {})
    assert fixture_stem(request) == "BINANCE_BTCUSDT__1mon__ctpl_price_ma1226_vol_v1"


def test_fixture_stem_keeps_the_rest_of_the_symbol_and_uses_the_token() -> None:
    tf = TIMEFRAMES["1m"]
    request = ChartRequest("ctpl_a_v2", "BYBIT:BTCUSDT.P", tf.interval, tf.token, {})
    assert fixture_stem(request) == "BYBIT_BTCUSDT.P__1min__ctpl_a_v2"


def test_account_and_attempt_reprs_hold_neither_key_nor_image() -> None:
    account = Account("acc-1", KEY_1, 44)
    assert KEY_1 not in repr(account)
    assert KEY_1 not in str(account)
    attempt = ChartAttempt("ok", 200, png=PNG_MAGIC * 10, bytes=80)
    assert "PNG" not in repr(attempt)
