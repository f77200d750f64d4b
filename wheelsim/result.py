"""`backtestResult` (BACKTEST §9.8) and its canonical JSON and hash (§9.7).

Rounding happens only here, on output: every aggregate is computed from unrounded doubles, and
`configUsed` is echoed as given so a reader can re-run the job from the result alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from wheelsim.analysis import (
    REGIMES,
    Regime,
    dominant_regime,
    max_drawdown,
    mean,
    regime_labels,
    regime_segments,
    share,
    total_return,
)
from wheelsim.config import ENGINE_VERSION, MAX_POINTS, MIN_PRICE, SimConfig
from wheelsim.machine import Cycle, Trace, simulate_trace


def simulate(config: SimConfig, prices: Sequence[float], dates: Sequence[str]) -> dict[str, Any]:
    """Run engine 1.0.0 over a resolved price path and return the `backtestResult` to store.

    `dates[i]` is the date of `prices[i]`; the engine never computes dates, since inline and
    history paths date their points differently (§6).
    """
    _check_inputs(config, prices, dates)
    trace = simulate_trace(config, prices)
    labels = regime_labels(prices)
    regimes = [dominant_regime(labels, c.start_index, c.end_index) for c in trace.cycles]
    result: dict[str, Any] = {
        "engineVersion": ENGINE_VERSION,
        "configUsed": _config_used(config, prices),
        "priceData": {"points": len(prices), "firstDate": dates[0], "lastDate": dates[-1]},
        "equityCurve": [_out(e) for e in trace.equity],
        "maxDrawdown": _out(max_drawdown(trace.equity, config.starting_capital)),
        "totalReturn": _out(total_return(trace.equity, config.starting_capital)),
        "cyclesCompleted": len(trace.cycles),
        "cycles": [_cycle(c, r) for c, r in zip(trace.cycles, regimes, strict=True)],
        "avgCycleReturn": _out_or_none(mean(_return(c) for c in trace.cycles)),
        "avgCycleDurationDays": _out_or_none(mean(_duration(c) for c in trace.cycles)),
        "assignmentRate": _out_or_none(share([c.had_assignment for c in trace.cycles])),
    }
    for regime in REGIMES:
        members = [c for c, r in zip(trace.cycles, regimes, strict=True) if r == regime]
        result[f"{regime}AvgCycleReturn"] = _out_or_none(mean(_return(c) for c in members))
        result[f"{regime}AssignmentRate"] = _out_or_none(share([c.had_assignment for c in members]))
    result["regimeSegments"] = [
        {
            "regime": s.regime,
            "startIndex": s.start_index,
            "endIndex": s.end_index,
            "startDate": dates[s.start_index],
            "endDate": dates[s.end_index],
        }
        for s in regime_segments(labels)
    ]
    result["notes"] = list(trace.notes)
    result["finalPosition"] = _final_position(trace)
    return result


def canonical_json(obj: Any) -> bytes:
    """The one serialization that is hashed: sorted keys, no spaces, floats as `repr`."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def result_sha256(result: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(result)).hexdigest()


def _check_inputs(config: SimConfig, prices: Sequence[float], dates: Sequence[str]) -> None:
    """Guard the caller's side of the contract: validation must already have enforced it."""
    capital = config.starting_capital
    if not (math.isfinite(capital) and capital > 0.0) or config.max_cycles < 1:
        raise ValueError("startingCapital must be finite and > 0, maxCycles >= 1")
    if not 1 <= len(prices) <= MAX_POINTS:
        raise ValueError(f"the price path must hold 1..{MAX_POINTS} points")
    if len(dates) != len(prices):
        raise ValueError("one date is needed per price point")
    for price in prices:
        if not (math.isfinite(price) and price >= MIN_PRICE):
            raise ValueError(f"prices must be finite and >= {MIN_PRICE}")


def _config_used(config: SimConfig, prices: Sequence[float]) -> dict[str, Any]:
    return {
        "startingCapital": float(config.starting_capital),
        "maxCycles": config.max_cycles,
        "strategyId": config.strategy_id,
        "label": config.label,
        "symbol": config.symbol,
        "startDate": config.start_date,
        "endDate": config.end_date,
        "dataSource": config.data_source,
        "pricePath": [float(p) for p in prices],
    }


def _return(cycle: Cycle) -> float:
    return (cycle.end_equity - cycle.start_equity) / cycle.start_equity


def _duration(cycle: Cycle) -> int:
    return cycle.end_index - cycle.start_index


def _cycle(cycle: Cycle, regime: Regime | None) -> dict[str, Any]:
    return {
        "cycleId": f"cycle-{cycle.index}",
        "index": cycle.index,
        "startIndex": cycle.start_index,
        "endIndex": cycle.end_index,
        "durationDays": _duration(cycle),
        "startEquity": _out(cycle.start_equity),
        "endEquity": _out(cycle.end_equity),
        "cycleReturn": _out(_return(cycle)),
        "contracts": cycle.contracts,
        "premiumCollected": _out(cycle.premium_collected),
        "hadAssignment": cycle.had_assignment,
        "outcome": cycle.outcome,
        "dominantRegime": regime,
        "assignmentPrice": _out_or_none(cycle.assignment_price),
        "assignmentStrike": _out_or_none(cycle.assignment_strike),
        "calledAwayPrice": _out_or_none(cycle.called_away_price),
        "calledAwayStrike": _out_or_none(cycle.called_away_strike),
    }


def _final_position(trace: Trace) -> dict[str, Any]:
    return {
        "state": trace.state,
        "cash": _out(trace.cash[-1]),
        "shares": trace.shares[-1],
        "optionStrike": None if trace.option is None else _out(trace.option.strike),
        "optionExpiryIndex": None if trace.option is None else trace.option.expiry,
    }


def _out(x: float) -> float:
    """Ten decimals hide last-bit `log`/`erf` differences; `+ 0.0` turns -0.0 into 0.0."""
    return round(x, 10) + 0.0


def _out_or_none(x: float | None) -> float | None:
    return None if x is None else _out(x)
