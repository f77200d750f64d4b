"""Strikes in cents and Black-Scholes values per share with r = 0 (BACKTEST §9.1, §9.3).

The expressions are written exactly as the spec states them, in the same order: results are
compared across platforms and hashed, so an algebraically equal rewrite is not equal enough.
"""

from __future__ import annotations

import math

from wheelsim.config import SIGMA, SQRT_2, SQRT_T, T
from wheelsim.errors import EngineError

_VT = SIGMA * SQRT_T


def round_cents(x: float) -> float:
    """`floor(x * 100 + 0.5) / 100`: half-up in cents, bit-exact on every platform.

    A price so large that the scaled value overflows has no strike at all; `math.floor` would
    raise an OverflowError that says nothing useful, so it is reported as an engine error.
    """
    scaled = x * 100.0 + 0.5
    if not math.isfinite(scaled):
        raise EngineError("engine: strike is not a finite number")
    return math.floor(scaled) / 100.0


def put_value(s: float, k: float) -> float:
    d1, d2 = _d1_d2(s, k)
    return _usable(k * _cdf(-d2) - s * _cdf(-d1))


def call_value(s: float, k: float) -> float:
    d1, d2 = _d1_d2(s, k)
    return _usable(s * _cdf(d1) - k * _cdf(d2))


def _d1_d2(s: float, k: float) -> tuple[float, float]:
    d1 = (math.log(s / k) + 0.5 * SIGMA * SIGMA * T) / _VT
    return d1, d1 - _VT


def _cdf(x: float) -> float:
    """Standard normal CDF through `erf`, not a polynomial approximation (BACKTEST §16)."""
    return 0.5 * (1.0 + math.erf(x / SQRT_2))


def _usable(value: float) -> float:
    """Cancellation can leave a deep out-of-the-money value a hair below zero; that is 0.0."""
    if not math.isfinite(value):
        raise EngineError("engine: option value is not a finite number")
    return 0.0 if value < 0.0 else value
