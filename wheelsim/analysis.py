"""Equity metrics, market regimes and cycle statistics (BACKTEST §9.4 to §9.6).

Sums are plain left-to-right loops from 0.0: `sum()` compensates rounding on Python ≥ 3.12 and
`math.fsum` always does, and either would change the last bits that the result hash covers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from wheelsim.config import DOWNTREND_THRESHOLD, LOOKBACK, UPTREND_THRESHOLD

Regime = Literal["uptrend", "downtrend", "sideways"]
# Also the tie-break order of the dominant regime.
REGIMES: tuple[Regime, ...] = ("uptrend", "downtrend", "sideways")


@dataclass(frozen=True)
class Segment:
    """A maximal run of consecutive classified indices with one label, bounds inclusive."""

    regime: Regime
    start_index: int
    end_index: int


def max_drawdown(equity: Sequence[float], starting_capital: float) -> float:
    """The deepest fall from a running peak, as a fraction ≤ 0; the peak starts at the capital."""
    peak = starting_capital
    deepest = 0.0
    for e in equity:
        if e > peak:
            peak = e
        deepest = max(deepest, (peak - e) / peak)
    return -deepest


def total_return(equity: Sequence[float], starting_capital: float) -> float:
    return (equity[-1] - starting_capital) / starting_capital


def regime_labels(prices: Sequence[float]) -> list[Regime | None]:
    """One label per index from the 10-point return; the first 10 indices have no history."""
    labels: list[Regime | None] = [None] * min(LOOKBACK, len(prices))
    for i in range(LOOKBACK, len(prices)):
        past = prices[i - LOOKBACK]
        ret = (prices[i] - past) / past
        if ret >= UPTREND_THRESHOLD:
            labels.append("uptrend")
        elif ret <= DOWNTREND_THRESHOLD:
            labels.append("downtrend")
        else:
            labels.append("sideways")
    return labels


def regime_segments(labels: Sequence[Regime | None]) -> list[Segment]:
    segments: list[Segment] = []
    for i, label in enumerate(labels):
        if label is None:
            continue
        if segments and segments[-1].regime == label and segments[-1].end_index == i - 1:
            segments[-1] = Segment(label, segments[-1].start_index, i)
        else:
            segments.append(Segment(label, i, i))
    return segments


def dominant_regime(labels: Sequence[Regime | None], start: int, end: int) -> Regime | None:
    """The most frequent label over `[start, end]`; ties go to the earlier of `REGIMES`."""
    counts = dict.fromkeys(REGIMES, 0)
    for label in labels[start : end + 1]:
        if label is not None:
            counts[label] += 1
    best: Regime | None = None
    for regime in REGIMES:
        if counts[regime] > 0 and (best is None or counts[regime] > counts[best]):
            best = regime
    return best


def mean(values: Iterable[float]) -> float | None:
    """Mean of the values, or None over nothing: an average of no cycle is not 0.0."""
    total = 0.0
    count = 0
    for value in values:
        total = total + value
        count += 1
    return total / count if count else None


def share(flags: Sequence[bool]) -> float | None:
    """Fraction of true flags, or None over nothing; counts are integers, so this is exact."""
    return flags.count(True) / len(flags) if flags else None
