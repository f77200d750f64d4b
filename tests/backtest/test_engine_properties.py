"""Invariants of engine 1.0.0 over generated price paths (hypothesis).

Each property restates a rule of BACKTEST §9 from the outside: the accounting identity, cash
secured puts, the cycle bound, the regime rule, statistics that summarize `cycles`, and a result
that depends on nothing but its input.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import random
import subprocess
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack import REPO_ROOT
from states.backtest.validation import synthetic_dates
from tests.backtest.vectors import result_validator
from wheelsim import SimConfig, canonical_json, result_sha256, simulate, simulate_trace

Job = tuple[SimConfig, list[float], list[str]]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REGIME_ORDER = ("uptrend", "downtrend", "sideways")


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    """Random walks (often in whole cents, so `S == K` happens) or arbitrary prices.

    The capital is drawn relative to the first price, so that most jobs trade: between half a
    contract and a few dozen contracts of cash.
    """
    count = draw(st.integers(1, 300))
    if draw(st.integers(0, 3)):
        walk = draw(st.randoms(use_true_random=False))
        volatility = draw(st.sampled_from([0.0, 0.005, 0.02, 0.05]))
        drift = draw(st.sampled_from([-0.004, 0.0, 0.004]))
        prices = [draw(st.floats(0.01, 500.0))]
        while len(prices) < count:
            move = min(0.5, max(-0.5, walk.gauss(drift, volatility)))
            prices.append(max(0.01, prices[-1] * (1.0 + move)))
        if draw(st.booleans()):
            prices = [max(0.01, round(p, 2)) for p in prices]
    else:
        prices = draw(st.lists(st.floats(0.01, 10_000.0), min_size=1, max_size=count))
    contracts = draw(st.floats(0.5, 40.0))
    config = SimConfig(
        starting_capital=min(1e12, prices[0] * 100.0 * contracts),
        max_cycles=draw(st.integers(1, 12)),
        strategy_id="wheel",
        label=draw(st.none() | st.text(max_size=5)),
        symbol="TEST",
        start_date="2024-01-01",
        end_date="2024-12-31",
        data_source="inline",
    )
    return config, prices, synthetic_dates(datetime.date(2024, 1, 1), len(prices))


def regime_of(prices: list[float], i: int) -> str | None:
    """§9.5, restated: the label of index i, None for the first ten."""
    if i < 10:
        return None
    ret = (prices[i] - prices[i - 10]) / prices[i - 10]
    return "uptrend" if ret >= 0.03 else "downtrend" if ret <= -0.03 else "sideways"


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


@FAST
@given(jobs())
def test_equity_is_cash_plus_shares_at_every_point(job: Job) -> None:
    config, prices, dates = job
    trace = simulate_trace(config, prices)
    assert len(trace.equity) == len(trace.cash) == len(trace.shares) == len(prices)
    for equity, cash, shares, price in zip(
        trace.equity, trace.cash, trace.shares, prices, strict=True
    ):
        assert equity == cash + shares * price
    curve = simulate(config, prices, dates)["equityCurve"]
    assert all(close(a, b) for a, b in zip(curve, trace.equity, strict=True))


@FAST
@given(jobs())
def test_cash_and_shares_never_go_negative(job: Job) -> None:
    config, prices, _ = job
    trace = simulate_trace(config, prices)
    assert all(cash >= 0.0 for cash in trace.cash)
    assert all(shares >= 0 and shares % 100 == 0 for shares in trace.shares)


@FAST
@given(jobs())
def test_cycles_are_bounded_ordered_and_consistent(job: Job) -> None:
    config, prices, dates = job
    result = simulate(config, prices, dates)
    cycles = result["cycles"]
    assert result["cyclesCompleted"] == len(cycles) <= config.max_cycles
    previous_end = -1
    for position, cycle in enumerate(cycles):
        assert cycle["index"] == position and cycle["cycleId"] == f"cycle-{position}"
        assert previous_end < cycle["startIndex"] < cycle["endIndex"] < len(prices)
        assert cycle["durationDays"] == cycle["endIndex"] - cycle["startIndex"]
        if cycle["outcome"] == "expiredOTM":
            assert cycle["durationDays"] == 30 and not cycle["hadAssignment"]
        else:
            assert cycle["durationDays"] >= 61 and cycle["hadAssignment"]
        previous_end = cycle["endIndex"]
    puts_sold = sum(note.split(": ", 1)[1].startswith("sell put") for note in result["notes"])
    still_open = result["finalPosition"]["state"] != "idle"
    assert puts_sold == len(cycles) + still_open
    reached = [n for n in result["notes"] if "maxCycles reached" in n]
    assert len(reached) == (1 if len(cycles) == config.max_cycles else 0)
    assert result["notes"][-1].startswith(f"{len(prices) - 1}: end state=")


@FAST
@given(jobs())
def test_regime_segments_partition_the_classified_indices(job: Job) -> None:
    config, prices, dates = job
    segments = simulate(config, prices, dates)["regimeSegments"]
    covered: list[int] = []
    for k, segment in enumerate(segments):
        start, end = segment["startIndex"], segment["endIndex"]
        assert start <= end
        assert (segment["startDate"], segment["endDate"]) == (dates[start], dates[end])
        assert all(regime_of(prices, i) == segment["regime"] for i in range(start, end + 1))
        if k > 0:
            assert segments[k - 1]["regime"] != segment["regime"], "equal neighbours merge"
        covered += range(start, end + 1)
    assert covered == list(range(10, len(prices)))


@FAST
@given(jobs())
def test_statistics_summarize_the_cycles(job: Job) -> None:
    config, prices, dates = job
    result = simulate(config, prices, dates)
    cycles = result["cycles"]
    for cycle in cycles:
        counts = {r: 0 for r in REGIME_ORDER}
        for i in range(cycle["startIndex"], cycle["endIndex"] + 1):
            label = regime_of(prices, i)
            if label is not None:
                counts[label] += 1
        best = max(REGIME_ORDER, key=lambda r: (counts[r], -REGIME_ORDER.index(r)))
        assert cycle["dominantRegime"] == (best if counts[best] else None)

    def summary(group: list[dict[str, Any]]) -> tuple[float | None, float | None]:
        if not group:
            return None, None
        mean_return = sum(c["cycleReturn"] for c in group) / len(group)
        rate = sum(c["hadAssignment"] for c in group) / len(group)
        return mean_return, rate

    overall = summary(cycles)
    assert close(result["avgCycleReturn"], overall[0])
    assert close(result["assignmentRate"], overall[1])
    durations = [float(c["durationDays"]) for c in cycles]
    assert close(result["avgCycleDurationDays"], sum(durations) / len(cycles) if cycles else None)
    for regime in REGIME_ORDER:
        members = [c for c in cycles if c["dominantRegime"] == regime]
        mean_return, rate = summary(members)
        assert close(result[f"{regime}AvgCycleReturn"], mean_return)
        assert close(result[f"{regime}AssignmentRate"], rate)


_CHILD = """
import json, sys
from wheelsim import SimConfig, result_sha256, simulate
job = json.load(sys.stdin)
print(result_sha256(simulate(SimConfig(**job["config"]), job["prices"], job["dates"])))
"""


def hash_in_fresh_process(job: Job, hash_seed: str) -> str:
    config, prices, dates = job
    payload = json.dumps({"config": dataclasses.asdict(config), "prices": prices, "dates": dates})
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )
    return done.stdout.strip()


@settings(max_examples=3, deadline=None)
@given(jobs())
def test_same_input_gives_the_same_hash_in_a_fresh_process(job: Job) -> None:
    config, prices, dates = job
    here = result_sha256(simulate(config, prices, dates))
    assert hash_in_fresh_process(job, "1") == here
    assert hash_in_fresh_process(job, "4242") == here


def restated_drawdown(equity: list[float], capital: float) -> float:
    """§9.4, restated: the worst fall from the running peak (the capital counts as a peak)."""
    peak, worst = capital, 0.0
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak)
    return -worst


@FAST
@given(jobs())
def test_drawdown_and_return_follow_the_equity_curve(job: Job) -> None:
    config, prices, dates = job
    trace = simulate_trace(config, prices)
    result = simulate(config, prices, dates)
    assert -1.0 <= result["maxDrawdown"] <= 0.0
    assert close(result["maxDrawdown"], restated_drawdown(trace.equity, config.starting_capital))
    expected = (trace.equity[-1] - config.starting_capital) / config.starting_capital
    assert close(result["totalReturn"], expected)
    assert result["priceData"] == {
        "points": len(prices),
        "firstDate": dates[0],
        "lastDate": dates[-1],
    }


def doubles(value: Any, path: str = "$") -> list[tuple[str, Any]]:
    """Every number under `value` with its path (booleans are not numbers)."""
    if isinstance(value, dict):
        return [item for key, v in value.items() for item in doubles(v, f"{path}.{key}")]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in doubles(v, f"{path}[{i}]")]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [(path, value)]
    return []


INTEGER_FIELDS = ("cyclesCompleted", "maxCycles", "points", "index", "Index", "contracts", "shares")


@FAST
@given(jobs())
def test_the_result_is_schema_valid_and_its_hash_survives_a_store_round_trip(job: Job) -> None:
    """What the worker stores is re-hashed from the stored document (§7.1): the canonical JSON
    must read back to the same value, doubles must stay doubles, and -0.0 never appears."""
    config, prices, dates = job
    result = simulate(config, prices, dates)
    assert [e.message for e in result_validator().iter_errors(result)] == []
    canonical = canonical_json(result)
    again = json.loads(canonical)
    assert again == result and result_sha256(again) == result_sha256(result)
    for path, number in doubles(result):
        if path.endswith(INTEGER_FIELDS) or path.endswith("durationDays"):
            assert type(number) is int, path
        else:
            assert type(number) is float, path
            assert math.copysign(1.0, number) == 1.0 or number != 0.0, f"{path} is -0.0"
    assert simulate(config, prices, dates) == result, "the same input, the same result"


LONG_PATHS = settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))


@LONG_PATHS
@given(st.integers(4900, 5000), st.integers(0, 2**32))
def test_paths_up_to_the_5000_point_limit_keep_every_invariant(count: int, seed: int) -> None:
    """Drawn from a seed, not from hypothesis' own data: 5000 draws would exhaust it."""
    walk = random.Random(seed)
    prices = [100.0]
    while len(prices) < count:
        prices.append(max(0.01, round(prices[-1] * (1.0 + walk.gauss(0.0, 0.02)), 2)))
    config = SimConfig(
        starting_capital=50_000.0,
        max_cycles=1000,
        strategy_id="wheel",
        label=None,
        symbol="LONG",
        start_date="2000-01-01",
        end_date="2030-12-31",
        data_source="inline",
    )
    dates = synthetic_dates(datetime.date(2000, 1, 1), count)
    trace = simulate_trace(config, prices)
    result = simulate(config, prices, dates)
    assert len(result["equityCurve"]) == count
    assert all(cash >= 0.0 for cash in trace.cash)
    assert result["cyclesCompleted"] == len(result["cycles"]) <= 1000
    covered = [
        i for s in result["regimeSegments"] for i in range(s["startIndex"], s["endIndex"] + 1)
    ]
    assert covered == list(range(10, count))
    assert len(canonical_json(result)) < 1_000_000  # far below RESULT_TOO_LARGE at the limit
