"""Single rules of engine 1.0.0 that the vectors do not isolate (BACKTEST §9.2, §9.3, §9.7)."""

from __future__ import annotations

import datetime
import hashlib
import math
from typing import Any

import pytest

from states.backtest.validation import synthetic_dates
from wheelsim import EngineError, SimConfig, canonical_json, result_sha256, simulate
from wheelsim.pricing import call_value, put_value, round_cents

T = 30.0 / 365.0


def config(capital: float = 10000.0, max_cycles: int = 10) -> SimConfig:
    return SimConfig(
        starting_capital=capital,
        max_cycles=max_cycles,
        strategy_id="wheel",
        label=None,
        symbol="TEST",
        start_date="2024-01-01",
        end_date="2024-12-31",
        data_source="inline",
    )


def run(prices: list[float], capital: float = 10000.0, max_cycles: int = 10) -> dict[str, Any]:
    dates = synthetic_dates(datetime.date(2024, 1, 1), len(prices))
    return simulate(config(capital, max_cycles), prices, dates)


def spec_put(s: float, k: float) -> float:
    """§9.3 as printed, without the clamp at zero."""
    vt = 0.25 * math.sqrt(T)
    d1 = (math.log(s / k) + 0.5 * 0.25 * 0.25 * T) / vt
    d2 = d1 - vt

    def n(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    return k * n(-d2) - s * n(-d1)


# -- pricing ---------------------------------------------------------------------------------


def test_atm_put_matches_the_spec_example() -> None:
    assert round(put_value(100.0, 100.0), 10) == 2.8587180296


@pytest.mark.parametrize(("s", "k"), [(100.0, 100.0), (49.65, 49.65), (0.37, 0.37), (3.1, 2.0)])
def test_put_is_the_spec_expression(s: float, k: float) -> None:
    assert put_value(s, k) == spec_put(s, k)


def test_a_negative_value_from_cancellation_becomes_zero() -> None:
    assert spec_put(0.09, 0.05) < 0.0
    assert put_value(0.09, 0.05) == 0.0
    assert math.copysign(1.0, call_value(0.05, 0.09)) == 1.0


@pytest.mark.parametrize("x", [0.01, 0.014999, 0.015, 97.405, 1.02 * 95.5, 123456.785, 1e9 / 3])
def test_strikes_are_whole_cents_within_half_a_cent(x: float) -> None:
    k = round_cents(x)
    assert (k * 100.0).is_integer()
    assert abs(k - x) <= 0.005 + 1e-9 * x


# -- state machine rules ---------------------------------------------------------------------


def test_insufficient_cash_is_noted_once_per_idle_stretch() -> None:
    # 1 put at 100, OTM at 30; 150 is out of reach until the price comes back to 100 at 41.
    prices = [100.0] * 30 + [103.0] + [150.0] * 10 + [100.0] * 30 + [103.0] + [150.0] * 5
    notes = run(prices)["notes"]
    short = [n for n in notes if "insufficient cash" in n]
    assert [n.split(":")[0] for n in short] == ["31", "72"]
    assert notes.index(short[0]) < notes.index("41: sell put x1 K=100.00 premium=285.87")


def test_no_put_after_max_cycles() -> None:
    prices = [100.0] * 30 + [103.0] * 40
    result = run(prices, max_cycles=1)
    assert result["cyclesCompleted"] == 1
    assert result["notes"][-2:] == [
        "30: maxCycles reached (1)",
        "69: end state=idle cash=10285.87 shares=0",
    ]


def test_an_option_expiring_after_the_path_leaves_its_cycle_open() -> None:
    result = run([100.0] * 30)
    assert result["cycles"] == []
    assert result["finalPosition"]["state"] == "shortPut"
    assert result["finalPosition"]["optionExpiryIndex"] == 30
    assert result["avgCycleReturn"] is None and result["assignmentRate"] is None


def test_one_point_and_no_regime_below_eleven_points() -> None:
    assert run([100.0])["priceData"] == {
        "points": 1,
        "firstDate": "2024-01-01",
        "lastDate": "2024-01-01",
    }
    assert run([100.0] * 10)["regimeSegments"] == []
    assert len(run([100.0] * 11)["regimeSegments"]) == 1


def test_no_drawdown_is_positive_zero() -> None:
    result = run([100.0] * 40, capital=50.0)
    assert result["maxDrawdown"] == 0.0 and math.copysign(1.0, result["maxDrawdown"]) == 1.0


def test_doubles_stay_doubles() -> None:
    result = run([100, 100], capital=20000)  # integers in, as an unvalidated caller might pass
    assert type(result["configUsed"]["startingCapital"]) is float
    assert [type(p) for p in result["configUsed"]["pricePath"]] == [float, float]
    assert type(result["finalPosition"]["optionStrike"]) is float
    assert b'"startingCapital":20000.0' in canonical_json(result)


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prices", "capital", "what"),
    [
        ([1e307], 10000.0, "strike"),
        ([100.0] * 30 + [95.0, 1.7e306], 1e7, "premium"),
        ([100.0] * 30 + [95.0, 95.0, 1e307], 10000.0, "equity"),
    ],
)
def test_overflow_is_an_engine_error_without_values(
    prices: list[float], capital: float, what: str
) -> None:
    with pytest.raises(EngineError) as caught:
        run(prices, capital)
    assert what in caught.value.message
    assert not any(ch.isdigit() for ch in caught.value.message)


@pytest.mark.parametrize(
    ("prices", "dates"),
    [
        ([], []),
        ([100.0] * 5001, ["2024-01-01"] * 5001),
        ([100.0, 101.0], ["2024-01-01"]),
        ([100.0, math.nan], ["2024-01-01", "2024-01-02"]),
        ([100.0, 0.0], ["2024-01-01", "2024-01-02"]),
    ],
)
def test_a_path_that_validation_should_have_refused(prices: list[float], dates: list[str]) -> None:
    with pytest.raises(ValueError):
        simulate(config(), prices, dates)


@pytest.mark.parametrize(
    ("capital", "max_cycles"), [(0.0, 10), (-1.0, 10), (math.nan, 10), (1e4, 0)]
)
def test_a_config_that_validation_should_have_refused(capital: float, max_cycles: int) -> None:
    with pytest.raises(ValueError):
        simulate(config(capital, max_cycles), [100.0], ["2024-01-01"])


# -- canonical JSON ----------------------------------------------------------------------------


def test_canonical_json_form() -> None:
    value = {"b": 10000.0, "a": [1e-05, 0.1, None, True], "é": "ü"}
    assert canonical_json(value) == '{"a":[1e-05,0.1,null,true],"b":10000.0,"é":"ü"}'.encode()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_refuses_non_finite_numbers(bad: float) -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": bad})


def test_result_hash_is_sha256_of_canonical_json() -> None:
    result = run([100.0] * 31)
    assert result_sha256(result) == hashlib.sha256(canonical_json(result)).hexdigest()
