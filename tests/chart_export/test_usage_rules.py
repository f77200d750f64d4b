"""The pure quota rules of CHART_EXPORT §7: window, count, limit, and the fields written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from hypothesis import given
from hypothesis import strategies as st

from states.chart_export.usage import (
    UNREADABLE_COUNT,
    AtLimit,
    Reserved,
    count_today,
    decide_reservation,
    effective_limit,
    exhausted_fields,
    reservation_fields,
    utc_midnight,
)
from tests.contracts import load

NOW = datetime(2025, 12, 15, 10, 26, tzinfo=UTC)
TODAY = datetime(2025, 12, 15, tzinfo=UTC)
USAGE_SCHEMA = load("chart_export/chart_img_account_usage.schema.json")


# -- utc_midnight ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "midnight"),
    [
        (NOW, TODAY),
        (TODAY, TODAY),
        (datetime(2025, 12, 15, 23, 59, 59, 999999, tzinfo=UTC), TODAY),
        # 01:30 at +02:00 is 23:30 UTC the day before
        (datetime(2025, 12, 15, 1, 30, tzinfo=timezone(timedelta(hours=2))), TODAY - timedelta(1)),
        # 20:00 at -05:00 is 01:00 UTC the next day
        (datetime(2025, 12, 15, 20, 0, tzinfo=timezone(timedelta(hours=-5))), TODAY + timedelta(1)),
    ],
)
def test_utc_midnight_is_the_start_of_the_utc_day(now: datetime, midnight: datetime) -> None:
    result = utc_midnight(now)
    assert result == midnight
    assert result.utcoffset() == timedelta(0)


def test_utc_midnight_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_midnight(datetime(2025, 12, 15, 10, 26))


# -- count_today -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "window",
    [
        "2025-12-15T00:00:00Z",
        "2025-12-15T00:00:00.000000Z",
        "2025-12-15T01:00:00+01:00",  # the same instant, another offset
        TODAY,
        DatetimeWithNanoseconds(2025, 12, 15, tzinfo=UTC),
    ],
    ids=["rfc3339", "fraction", "offset", "datetime", "firestore_timestamp_as_read"],
)
def test_a_window_starting_today_keeps_its_count(window: Any) -> None:
    assert count_today({"usageToday": 17, "windowStart": window}, TODAY) == 17
    assert count_today({"usageToday": 17, "windowStart": window}, NOW) == 17  # any moment of it


@pytest.mark.parametrize(
    "window",
    [
        "2025-12-14T00:00:00Z",  # older
        "2025-12-16T00:00:00Z",  # newer
        "2025-12-15T00:00:01Z",  # today but not midnight
        "2025-12-15T00:00:00",  # no offset: which midnight?
        "2025-12-15",
        "yesterday",
        "",
        None,
        17,
        datetime(2025, 12, 15),  # naive
        datetime(2025, 12, 14, tzinfo=UTC),
    ],
)
def test_any_other_window_counts_zero(window: Any) -> None:
    assert count_today({"usageToday": 17, "windowStart": window}, NOW) == 0


def test_a_missing_document_or_window_counts_zero() -> None:
    assert count_today(None, NOW) == 0
    assert count_today({}, NOW) == 0
    assert count_today({"usageToday": 17}, NOW) == 0


@pytest.mark.parametrize(("stored", "count"), [(0, 0), (44, 44), (3.0, 3), (0.0, 0)])
def test_integer_counts_are_read_as_they_are(stored: Any, count: int) -> None:
    assert count_today({"usageToday": stored, "windowStart": "2025-12-15T00:00:00Z"}, NOW) == count


@pytest.mark.parametrize(
    "garbage",
    [-1, -0.5, 2.5, float("nan"), float("inf"), True, False, "12", None, {"n": 1}, [1]],
)
def test_an_unreadable_count_today_leaves_no_quota(garbage: Any) -> None:
    doc = {"usageToday": garbage, "windowStart": "2025-12-15T00:00:00Z"}
    assert count_today(doc, NOW) == UNREADABLE_COUNT
    assert count_today({"windowStart": "2025-12-15T00:00:00Z"}, NOW) == UNREADABLE_COUNT
    assert isinstance(decide_reservation(doc, 5000, 5000, 5000, NOW), AtLimit)


def test_an_unreadable_count_from_another_day_is_a_fresh_window() -> None:
    assert count_today({"usageToday": "12", "windowStart": "2025-12-14T00:00:00Z"}, NOW) == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.datetimes(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(usage=json_values, window=json_values | st.just("2025-12-15T00:00:00Z"))
def test_count_today_never_raises_and_never_goes_below_zero(usage: Any, window: Any) -> None:
    count = count_today({"usageToday": usage, "windowStart": window}, NOW)
    assert count >= 0
    if count not in (0, UNREADABLE_COUNT):
        assert count == usage  # only a real count passes through


# -- effective_limit -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc_limit", "secret_limit", "limit"),
    [
        (7, 30, 7),  # the document's dailyLimit wins over the secret's
        (0, 30, 0),  # 0 disables the account
        (None, 30, 30),  # else the secret's
        (None, None, 44),  # else the default
        (200, 30, 50),  # never above the plan's daily max
        (None, 200, 50),
        (True, 30, 30),  # a bool is not an integer
        (-1, 30, 30),
        ("7", 30, 30),
        (7.0, 30, 30),
        ("7", None, 44),
    ],
)
def test_effective_limit(doc_limit: Any, secret_limit: int | None, limit: int) -> None:
    assert effective_limit(doc_limit, secret_limit, 44, 50) == limit


def test_the_default_is_capped_at_the_plan_max_too() -> None:
    assert effective_limit(None, None, 5000, 50) == 50
    assert effective_limit(None, None, 0, 50) == 0


# -- what a round decides and writes ----------------------------------------------------


def test_a_reservation_takes_the_next_number_until_the_limit() -> None:
    doc = {"usageToday": 2, "windowStart": "2025-12-15T00:00:00Z"}
    assert decide_reservation(doc, 3, 44, 50, NOW) == Reserved(usage_today=3, daily_limit=3)
    doc["usageToday"] = 3
    assert decide_reservation(doc, 3, 44, 50, NOW) == AtLimit(usage_today=3, daily_limit=3)


def test_a_disabled_account_is_at_its_limit_even_without_a_document() -> None:
    assert decide_reservation(None, None, 0, 50, NOW) == AtLimit(usage_today=0, daily_limit=0)


def test_reservation_fields_match_the_contract() -> None:
    fields = reservation_fields(1, NOW)
    assert fields == {
        "usageToday": 1,
        "windowStart": "2025-12-15T00:00:00Z",
        "updatedAt": "2025-12-15T10:26:00.000000Z",
    }
    jsonschema.validate(fields, USAGE_SCHEMA)


@pytest.mark.parametrize(
    ("doc", "written"),
    [
        (None, 44),
        ({"usageToday": 3, "windowStart": "2025-12-15T00:00:00Z"}, 44),
        ({"usageToday": 60, "windowStart": "2025-12-15T00:00:00Z"}, 60),  # never lowered
        ({"usageToday": 60, "windowStart": "2025-12-14T00:00:00Z"}, 44),  # yesterday's
        ({"usageToday": "junk", "windowStart": "2025-12-15T00:00:00Z"}, 44),  # repaired
        ({"usageToday": 3, "windowStart": "2025-12-15T00:00:00Z", "dailyLimit": 10}, 10),
    ],
)
def test_exhausted_fields(doc: dict[str, Any] | None, written: int) -> None:
    fields = exhausted_fields(doc, None, 44, 50, NOW)
    assert fields == {
        "usageToday": written,
        "windowStart": "2025-12-15T00:00:00Z",
        "exhaustedAt": "2025-12-15T10:26:00.000000Z",
        "updatedAt": "2025-12-15T10:26:00.000000Z",
    }
    jsonschema.validate(fields, USAGE_SCHEMA)


def test_the_contract_example_is_read_as_a_count_on_its_day() -> None:
    example = load("chart_export/examples/chart_img_account_usage.example.json")
    assert count_today(example, datetime(2025, 12, 15, 23, 0, tzinfo=UTC)) == 17
    assert count_today(example, datetime(2025, 12, 16, 0, 0, tzinfo=UTC)) == 0
