"""Job validation before the claim (BACKTEST §4): codes, field paths, order, sanitized messages."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds

from states.backtest.validation import ValidJob, Violation, synthetic_dates, validate_job
from tests.backtest.vectors import load_vector, vector_paths

DOC_ID = "job-1"


def utc_offset(offset: int) -> datetime.timezone:
    return datetime.timezone(datetime.timedelta(hours=offset))


def firestore_timestamp(year: int, month: int, day: int, hour: int) -> datetime.datetime:
    """A timestamp as the Firestore client returns it: a tz-aware `datetime` subclass."""
    moment: datetime.datetime = DatetimeWithNanoseconds(year, month, day, hour, tzinfo=datetime.UTC)
    return moment


DROP = object()  # a config change that removes the key


def job(**config_changes: Any) -> dict[str, Any]:
    """A valid inline job with `config_changes` applied to its `configUsed`."""
    config: dict[str, Any] = {
        "startingCapital": 10000.0,
        "maxCycles": 10,
        "strategyId": "wheel",
        "label": None,
        "symbol": "TEST",
        "startDate": "2024-01-01",
        "endDate": "2024-12-31",
        "pricePath": [100.0, 101.0, 102.0],
    }
    for key, value in config_changes.items():
        if value is DROP:
            config.pop(key, None)
        else:
            config[key] = value
    return {
        "jobId": DOC_ID,
        "userId": "user_alice",
        "status": "queued",
        "engineVersion": "1.0.0",
        "configUsed": config,
    }


def violation(data: dict[str, Any]) -> Violation:
    outcome = validate_job(DOC_ID, data)
    assert isinstance(outcome, Violation), outcome
    assert outcome.message.startswith(f"{outcome.field}: ")
    assert len(outcome.message) <= 500 and len(outcome.message.encode("utf-8")) <= 512
    return outcome


def valid(data: dict[str, Any]) -> ValidJob:
    outcome = validate_job(DOC_ID, data)
    assert isinstance(outcome, ValidJob), outcome
    return outcome


def config_violation(**config_changes: Any) -> str:
    """The field of the CONFIG_INVALID violation the change causes."""
    found = violation(job(**config_changes))
    assert found.code == "CONFIG_INVALID", found
    return found.field


# -- contract vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", vector_paths("e"), ids=lambda p: p.stem)
def test_failure_vector(path: Path) -> None:
    vector = load_vector(path)
    expected = vector["expected"]["job"]
    found = validate_job(vector["jobId"], vector["job"])
    assert isinstance(found, Violation)
    assert found.code == expected["errorCode"]
    assert found.message.startswith(expected["errorMessagePrefix"])


@pytest.mark.parametrize("path", vector_paths("bt"), ids=lambda p: p.stem)
def test_engine_vector_jobs_pass(path: Path) -> None:
    vector = load_vector(path)
    assert isinstance(validate_job(vector["jobId"], vector["job"]), ValidJob)


def test_every_failure_vector_is_collected() -> None:
    assert len(vector_paths("e")) == 11


# -- the normalized job -----------------------------------------------------------------------


def test_valid_inline_job_is_normalized() -> None:
    found = valid(job(label="my run", startDate="2024-02-27T00:00:00.000"))
    assert found.job_id == DOC_ID and found.user_id == "user_alice"
    assert found.inline_prices == (100.0, 101.0, 102.0)
    assert found.start == datetime.date(2024, 2, 27) and found.end == datetime.date(2024, 12, 31)
    config = found.config
    assert (config.start_date, config.end_date) == ("2024-02-27", "2024-12-31")
    assert (config.label, config.symbol, config.strategy_id) == ("my run", "TEST", "wheel")
    assert config.data_source == "inline"


def test_integers_become_doubles_but_max_cycles_stays_an_integer() -> None:
    found = valid(job(startingCapital=3000, maxCycles=7, pricePath=[20, 20.5, 21]))
    assert type(found.config.starting_capital) is float and found.config.starting_capital == 3000
    assert found.inline_prices is not None
    assert [type(p) for p in found.inline_prices] == [float, float, float]
    assert type(found.config.max_cycles) is int and found.config.max_cycles == 7


def test_job_id_field_is_optional() -> None:
    data = job()
    del data["jobId"]
    assert valid(data).job_id == DOC_ID
    assert valid({**job(), "jobId": None}).job_id == DOC_ID


def test_unknown_config_keys_are_ignored() -> None:
    assert valid(job(volatility="high", extra={"nested": [1]}))


# -- rule by rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["other", 5, ""])
def test_job_id_other_than_the_document_id(job_id: Any) -> None:
    found = violation({**job(), "jobId": job_id})
    assert (found.code, found.field) == ("JOB_INVALID", "jobId")


@pytest.mark.parametrize("user_id", [DROP, None, 5, "", "u" * 129, ["user_alice"]])
def test_user_id_missing_or_malformed(user_id: Any) -> None:
    data = job()
    if user_id is DROP:
        del data["userId"]
    else:
        data["userId"] = user_id
    found = violation(data)
    assert (found.code, found.field) == ("USER_ID_MISSING", "userId")


def test_user_id_of_128_characters_is_accepted() -> None:
    assert valid({**job(), "userId": "u" * 128}).user_id == "u" * 128


@pytest.mark.parametrize("version", [DROP, None, 1.0, "1.0", "1.0.0 ", "1.0.0-cloud", "v1.0.0"])
def test_engine_version_not_supported(version: Any) -> None:
    data = job()
    if version is DROP:
        del data["engineVersion"]
    else:
        data["engineVersion"] = version
    found = violation(data)
    assert (found.code, found.field) == ("ENGINE_VERSION_UNSUPPORTED", "engineVersion")


def test_engine_version_is_echoed_cut_to_32_characters() -> None:
    version = "9.9.9-" + "x" * 40 + "TAIL"
    found = violation({**job(), "engineVersion": version})
    assert version[:32] in found.message
    assert version[:33] not in found.message and "TAIL" not in found.message


def test_engine_version_echo_respects_the_message_caps() -> None:
    found = violation({**job(), "engineVersion": "\U0001f600" * 600 + "\n\x00"})
    assert "\n" not in found.message and "\x00" not in found.message


@pytest.mark.parametrize("config", [DROP, None, [], "config", 5])
def test_config_used_missing_or_not_a_map(config: Any) -> None:
    data = job()
    if config is DROP:
        del data["configUsed"]
    else:
        data["configUsed"] = config
    found = violation(data)
    assert (found.code, found.field) == ("CONFIG_INVALID", "configUsed")


@pytest.mark.parametrize(
    "capital",
    [
        DROP,
        None,
        True,
        False,
        "10000",
        0,
        0.0,
        -1000.0,
        1e12 + 1,
        10**12 + 1,
        10**400,
        math.nan,
        math.inf,
        -math.inf,
    ],
)
def test_starting_capital_rejected(capital: Any) -> None:
    assert config_violation(startingCapital=capital) == "configUsed.startingCapital"


@pytest.mark.parametrize("capital", [1e-9, 1, 1e12, 10**12])
def test_starting_capital_accepted(capital: float) -> None:
    assert valid(job(startingCapital=capital)).config.starting_capital == capital


@pytest.mark.parametrize("cycles", [DROP, None, True, 0, -1, 1001, 10.0, 1.0, "10"])
def test_max_cycles_rejected(cycles: Any) -> None:
    assert config_violation(maxCycles=cycles) == "configUsed.maxCycles"


@pytest.mark.parametrize("cycles", [1, 1000])
def test_max_cycles_bounds_accepted(cycles: int) -> None:
    assert valid(job(maxCycles=cycles)).config.max_cycles == cycles


@pytest.mark.parametrize("strategy", [DROP, None, "", "s" * 129, 7])
def test_strategy_id_rejected(strategy: Any) -> None:
    assert config_violation(strategyId=strategy) == "configUsed.strategyId"


@pytest.mark.parametrize("label", [DROP, None, "", "l" * 200])
def test_label_accepted(label: Any) -> None:
    assert valid(job(label=label)).config.label == (None if label is DROP else label)


@pytest.mark.parametrize("label", ["l" * 201, 5, False, ["a"]])
def test_label_rejected(label: Any) -> None:
    assert config_violation(label=label) == "configUsed.label"


@pytest.mark.parametrize("symbol", ["TEST", "A", "BRK.B", "BTC-USD", "X_1", "0" * 16])
def test_symbol_accepted(symbol: str) -> None:
    assert valid(job(symbol=symbol)).config.symbol == symbol


@pytest.mark.parametrize(
    "symbol",
    [
        DROP,
        None,
        "",
        "test",
        ".A",
        "-A",
        "A" * 17,
        "TEST\n",
        "TE ST",
        "\uff34\uff25\uff33\uff34",
        "A/B",
    ],
)
def test_symbol_rejected(symbol: Any) -> None:
    assert config_violation(symbol=symbol) == "configUsed.symbol"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-02-29", datetime.date(2024, 2, 29)),
        ("2024-02-27T00:00:00.000", datetime.date(2024, 2, 27)),
        ("2024-02-27T23:59:59-11:00", datetime.date(2024, 2, 27)),
        ("2024-02-27T", datetime.date(2024, 2, 27)),
        ("1900-01-01", datetime.date(1900, 1, 1)),
        (datetime.datetime(2024, 3, 1, 1, 30, tzinfo=datetime.UTC), datetime.date(2024, 3, 1)),
        (
            datetime.datetime(2024, 3, 1, 1, 30, tzinfo=utc_offset(2)),
            datetime.date(2024, 2, 29),
        ),
        (datetime.datetime(2024, 3, 1, 23, 0), datetime.date(2024, 3, 1)),
        (firestore_timestamp(2024, 3, 1, 22), datetime.date(2024, 3, 1)),
    ],
)
def test_start_date_forms(raw: Any, expected: datetime.date) -> None:
    found = valid(job(startDate=raw, endDate="2099-12-31"))
    assert found.start == expected
    assert found.config.start_date == expected.isoformat()


@pytest.mark.parametrize(
    "raw",
    [
        DROP,
        None,
        "",
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-1-01",
        "24-01-01",
        "2024/01/01",
        "2024-01-01 10:00",
        "2024-01-01Z",
        "2024-01-01\n",
        "\uff12\uff10\uff12\uff14-01-01",
        "1899-12-31",
        "2100-01-01",
        "0000-01-01",
        20240101,
        datetime.date(2024, 1, 1),
        datetime.datetime(1899, 12, 31, 23, tzinfo=datetime.UTC),
        datetime.datetime(2099, 12, 31, 23, tzinfo=utc_offset(-5)),
        datetime.datetime(1, 1, 1, tzinfo=utc_offset(5)),
    ],
)
def test_start_date_rejected(raw: Any) -> None:
    assert config_violation(startDate=raw) == "configUsed.startDate"


def test_end_date_checked_after_start_date() -> None:
    assert config_violation(startDate="2024-02-30", endDate="nope") == "configUsed.startDate"
    assert config_violation(endDate="2100-01-01") == "configUsed.endDate"


def test_end_date_before_start_date_is_reported_on_end_date() -> None:
    assert config_violation(startDate="2024-05-01", endDate="2024-04-30") == "configUsed.endDate"
    same_day = valid(job(startDate="2024-05-01T20:00", endDate="2024-05-01T08:00"))
    assert same_day.start == same_day.end


def test_end_date_compares_timestamps_by_utc_date() -> None:
    start = datetime.datetime(2024, 5, 1, 23, tzinfo=utc_offset(-3))
    assert config_violation(startDate=start, endDate="2024-05-01") == "configUsed.endDate"


@pytest.mark.parametrize(
    ("source", "expected"),
    [(DROP, "inline"), (None, "inline"), ("inline", "inline"), ("history", "history")],
)
def test_data_source_accepted(source: Any, expected: str) -> None:
    prices = [] if expected == "history" else [100.0]
    assert valid(job(dataSource=source, pricePath=prices)).config.data_source == expected


@pytest.mark.parametrize("source", ["HISTORY", "csv", "", 1, True])
def test_data_source_rejected(source: Any) -> None:
    assert config_violation(dataSource=source) == "configUsed.dataSource"


@pytest.mark.parametrize("prices", [DROP, None, []])
def test_history_job_without_prices(prices: Any) -> None:
    found = valid(job(dataSource="history", pricePath=prices))
    assert found.inline_prices is None


@pytest.mark.parametrize("prices", [[100.0], [math.nan], {}, "100"])
def test_history_job_with_prices_rejected(prices: Any) -> None:
    assert config_violation(dataSource="history", pricePath=prices) == "configUsed.pricePath"


@pytest.mark.parametrize("prices", [DROP, None, [], "100.0", {"0": 100.0}, 100.0])
def test_inline_price_path_missing_or_not_a_list(prices: Any) -> None:
    assert config_violation(pricePath=prices) == "configUsed.pricePath"


def test_price_path_of_5000_points_is_accepted() -> None:
    found = valid(job(pricePath=[100.0] * 5000))
    assert found.inline_prices is not None and len(found.inline_prices) == 5000


def test_price_path_over_5000_points_is_too_long_before_items_are_checked() -> None:
    found = violation(job(pricePath=[math.nan] * 5001))
    assert (found.code, found.field) == ("PRICE_PATH_TOO_LONG", "configUsed.pricePath")


@pytest.mark.parametrize(
    ("prices", "index"),
    [
        ([100.0, True], 1),
        ([False], 0),
        ([100.0, math.nan, -1.0], 1),
        ([math.inf], 0),
        ([100.0, 101.0, -math.inf], 2),
        ([0.009], 0),
        ([0], 0),
        ([1, -5], 1),
        ([1, "2"], 1),
        ([1, None], 1),
        ([1, [2]], 1),
        ([10**400], 0),
    ],
)
def test_first_bad_price_is_reported_by_index(prices: list[Any], index: int) -> None:
    assert config_violation(pricePath=prices) == f"configUsed.pricePath[{index}]"


def test_smallest_price_is_accepted() -> None:
    assert valid(job(pricePath=[0.01, 1])).inline_prices == (0.01, 1.0)


# -- order and messages -------------------------------------------------------------------------

# Each step repairs the field the previous step reported, so the next rule in §4's order shows.
ORDER = [
    ("jobId", "JOB_INVALID"),
    ("userId", "USER_ID_MISSING"),
    ("engineVersion", "ENGINE_VERSION_UNSUPPORTED"),
    ("configUsed.startingCapital", "CONFIG_INVALID"),
    ("configUsed.maxCycles", "CONFIG_INVALID"),
    ("configUsed.strategyId", "CONFIG_INVALID"),
    ("configUsed.label", "CONFIG_INVALID"),
    ("configUsed.symbol", "CONFIG_INVALID"),
    ("configUsed.startDate", "CONFIG_INVALID"),
    ("configUsed.endDate", "CONFIG_INVALID"),
    ("configUsed.dataSource", "CONFIG_INVALID"),
    ("configUsed.pricePath", "CONFIG_INVALID"),
]


def test_rules_apply_in_the_order_of_section_4() -> None:
    data: dict[str, Any] = {
        "jobId": "someone-else",
        "userId": "",
        "engineVersion": "2.0.0",
        "configUsed": {
            "startingCapital": -1.0,
            "maxCycles": 0,
            "strategyId": "",
            "label": 42,
            "symbol": "lower",
            "startDate": "yesterday",
            "endDate": "tomorrow",
            "dataSource": "ftp",
            "pricePath": [],
        },
    }
    repairs = job()
    for field, code in ORDER:
        found = violation(data)
        assert (found.field, found.code) == (field, code)
        if field.startswith("configUsed."):
            key = field.removeprefix("configUsed.")
            data["configUsed"][key] = repairs["configUsed"].get(key)
        else:
            data[field] = repairs[field]
    assert valid(data)


def test_end_date_order_rule_comes_before_data_source() -> None:
    data = job(startDate="2024-05-02", endDate="2024-05-01", dataSource="ftp")
    assert violation(data).field == "configUsed.endDate"


SECRET = "S3CRET-VALUE"


@pytest.mark.parametrize(
    "data",
    [
        {**job(), "jobId": SECRET},
        {**job(), "userId": SECRET * 20},
        job(strategyId=SECRET * 20),
        job(label=SECRET * 30),
        job(symbol=SECRET.lower()),
        job(startDate=SECRET),
        job(dataSource=SECRET),
        job(pricePath=SECRET),
        job(dataSource="history", pricePath=[SECRET]),
        job(pricePath=[100.0, SECRET]),
        job(pricePath=[100.0, -123456.75]),
    ],
)
def test_values_are_never_echoed(data: dict[str, Any]) -> None:
    message = violation(data).message
    assert SECRET not in message and SECRET.lower() not in message
    assert "123456" not in message


def test_synthetic_dates_count_calendar_days() -> None:
    dates = synthetic_dates(datetime.date(2024, 2, 27), 4)
    assert dates == ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
