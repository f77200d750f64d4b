"""The history CSV of BACKTEST §6: object name, format rules, window selection, error codes."""

from __future__ import annotations

import datetime

import pytest

from states.backtest.history import HistoryError, history_object_name, select_points
from states.backtest.validation import ValidJob, validate_job
from tests.backtest.vectors import HISTORY_MAX_BYTES, load_vector, vector_paths

JAN = datetime.date(2024, 1, 1)
DEC = datetime.date(2024, 12, 31)
SECRET = "7777.77"  # a close that must never appear in a message

CSV = "date,close\n2024-03-01,49.90\n2024-03-04,49.65\n2024-03-05,49.42\n2024-03-06,50\n"


def points(text: str | bytes, start: datetime.date = JAN, end: datetime.date = DEC) -> list[str]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    _, dates = select_points(data, start, end, HISTORY_MAX_BYTES)
    return dates


def failure(
    text: str | bytes,
    start: datetime.date = JAN,
    end: datetime.date = DEC,
    max_bytes: int = HISTORY_MAX_BYTES,
    max_points: int = 5000,
) -> HistoryError:
    data = text.encode("utf-8") if isinstance(text, str) else text
    with pytest.raises(HistoryError) as caught:
        select_points(data, start, end, max_bytes, max_points)
    error = caught.value
    assert str(error) == error.message
    assert len(error.message) <= 500 and len(error.message.encode("utf-8")) <= 512
    return error


def invalid(text: str | bytes, max_bytes: int = HISTORY_MAX_BYTES) -> str:
    """The message of a HISTORY_INVALID error, checked to quote nothing from the object."""
    error = failure(text, max_bytes=max_bytes)
    assert error.code == "HISTORY_INVALID"
    assert error.message.startswith("history: ")
    assert SECRET not in error.message
    return error.message


# -- object name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", "daily/TEST.csv"),
        ("   ", "daily/TEST.csv"),
        ("/", "daily/TEST.csv"),
        ("prices", "prices/daily/TEST.csv"),
        ("/prices/", "prices/daily/TEST.csv"),
        (" //market/prices// ", "market/prices/daily/TEST.csv"),
    ],
)
def test_object_name(prefix: str, expected: str) -> None:
    assert history_object_name(prefix, "TEST") == expected


def test_vector_objects_are_named_by_symbol() -> None:
    """bt08's object is its symbol's; bt09 asks for another symbol, so its object is missing."""
    found = {}
    for path in vector_paths("bt0"):
        vector = load_vector(path)
        if vector["history"] is not None:
            valid = validate_job(vector["jobId"], vector["job"])
            assert isinstance(valid, ValidJob)
            name = history_object_name("", valid.config.symbol)
            found[path.stem[:4]] = name == vector["history"]["objectName"]
    assert found == {"bt08": True, "bt09": False}


# -- selection --------------------------------------------------------------------------------


def test_window_is_inclusive_and_in_file_order() -> None:
    prices, dates = select_points(
        CSV.encode(), datetime.date(2024, 3, 4), datetime.date(2024, 3, 6), HISTORY_MAX_BYTES
    )
    assert dates == ["2024-03-04", "2024-03-05", "2024-03-06"]
    assert prices == [49.65, 49.42, 50.0]
    assert all(type(p) is float for p in prices)


def test_window_between_rows_keeps_only_rows_inside() -> None:
    assert points(CSV, datetime.date(2024, 3, 2), datetime.date(2024, 3, 4)) == ["2024-03-04"]


def test_one_row_is_one_point_whatever_the_calendar_gap() -> None:
    assert points(CSV) == ["2024-03-01", "2024-03-04", "2024-03-05", "2024-03-06"]


def test_crlf_and_a_missing_final_newline_give_the_same_points() -> None:
    expected = select_points(CSV.encode(), JAN, DEC, HISTORY_MAX_BYTES)
    for variant in (CSV.replace("\n", "\r\n"), CSV.rstrip("\n"), CSV.replace("\n", "\r\n")[:-2]):
        assert select_points(variant.encode(), JAN, DEC, HISTORY_MAX_BYTES) == expected


def test_empty_window_is_not_found() -> None:
    error = failure(CSV, start=datetime.date(2024, 3, 7))
    assert error.code == "HISTORY_NOT_FOUND"
    assert error.message.startswith("history: ")


def test_header_only_is_not_found() -> None:
    assert failure("date,close\n").code == "HISTORY_NOT_FOUND"


def test_too_many_points_in_the_window() -> None:
    error = failure(CSV, max_points=3)
    assert error.code == "PRICE_PATH_TOO_LONG"
    assert error.message.startswith("configUsed.pricePath: ")
    assert len(points(CSV, datetime.date(2024, 3, 4))) == 3


def test_default_limit_is_5000_points() -> None:
    first = datetime.date(2000, 1, 1)
    rows = [f"{first + datetime.timedelta(days=i)},1.5" for i in range(5001)]
    text = "date,close\n" + "\n".join(rows)
    last = first + datetime.timedelta(days=5000)
    assert failure(text, first, last).code == "PRICE_PATH_TOO_LONG"
    assert len(points(text, first, last - datetime.timedelta(days=1))) == 5000


def test_format_errors_outside_the_window_still_fail() -> None:
    assert "line 6" in invalid(CSV + "2024-12-31,oops\n")


# -- format errors ----------------------------------------------------------------------------


def test_object_larger_than_the_limit() -> None:
    data = CSV.encode()
    invalid(data, max_bytes=len(data) - 1)
    assert select_points(data, JAN, DEC, len(data))


def test_not_utf8() -> None:
    assert "UTF-8" in invalid(CSV.encode() + b"2024-03-07,\xff\n")


@pytest.mark.parametrize(
    "header",
    ["", "Date,Close", "date,close,volume", "date;close", " date,close", "\ufeffdate,close", "\n"],
)
def test_header_must_be_exactly_date_close(header: str) -> None:
    assert "line 1" in invalid(header + "\n2024-03-01,49.90\n")


def test_empty_object_has_no_header() -> None:
    assert "line 1" in invalid(b"")


@pytest.mark.parametrize(
    "line",
    [
        f"2024-03-07,{SECRET},1",
        f"2024-03-07;{SECRET}",
        f"2024-03-07 {SECRET}",
        f"2024-3-07,{SECRET}",
        f"2024-02-30,{SECRET}",
        f"0000-01-01,{SECRET}",
        f"24-03-07,{SECRET}",
        f"2024-03-07T00:00,{SECRET}",
        f" 2024-03-07,{SECRET}",
        "2024-03-07,",
        "2024-03-07,1e3",
        "2024-03-07,-1.00",
        "2024-03-07,+1.00",
        "2024-03-07,1.",
        "2024-03-07,.5",
        "2024-03-07,1,000.00",
        f"2024-03-07, {SECRET}",
        f"2024-03-07,{SECRET} ",
        "2024-03-07,NaN",
        "2024-03-07,inf",
        "2024-03-07,0.00",
        "2024-03-07,0.009",
        "2024-03-07," + "9" * 400,
        f"2024-03-07,{SECRET}\r\r",
        "2024-03-07,\uff11.00",
    ],
)
def test_bad_line_is_named_by_number(line: str) -> None:
    message = invalid(CSV + line + "\n2024-03-08,1.00\n")
    assert message.startswith("history: line 6: ")


@pytest.mark.parametrize("close", ["0.01", "1", "0001.50", "123456789.123456789"])
def test_close_forms_accepted(close: str) -> None:
    prices, _ = select_points(f"date,close\n2024-03-01,{close}".encode(), JAN, DEC, 1000)
    assert prices == [float(close)]


@pytest.mark.parametrize(
    "text",
    [
        CSV + "\n",
        CSV + "\n2024-03-07,1.00\n",
        CSV.replace("\n", "\r\n") + "\r\n",
        CSV.replace("2024-03-04,49.65\n", "2024-03-04,49.65\n\n"),
    ],
)
def test_blank_lines_are_invalid(text: str) -> None:
    assert "blank line" in invalid(text)


def test_blank_line_is_named_by_number() -> None:
    assert invalid(CSV.replace("2024-03-04,49.65\n", "2024-03-04,49.65\n\n")).startswith(
        "history: line 4: "
    )


@pytest.mark.parametrize("repeat", ["2024-03-06", "2024-03-05", "2023-12-31"])
def test_dates_must_strictly_increase(repeat: str) -> None:
    message = invalid(CSV + f"{repeat},{SECRET}\n")
    assert message == "history: line 6: dates must be strictly increasing"
