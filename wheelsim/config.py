"""The fixed parameters of engine 1.0.0 (BACKTEST §9.1) and the normalized job it runs.

They are code, not configuration: a result is only reproducible from its `engineVersion` if every
constant that shaped it is pinned to that version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ENGINE_VERSION = "1.0.0"
SUPPORTED_ENGINE_VERSIONS = ("1.0.0",)
MAX_POINTS = 5000

SIGMA = 0.25
DTE = 30
T = 30.0 / 365.0
CONTRACT_SIZE = 100
CALL_STRIKE_FACTOR = 1.02
LOOKBACK = 10
UPTREND_THRESHOLD = 0.03
DOWNTREND_THRESHOLD = -0.03
MIN_PRICE = 0.01

# Evaluated once: the same expression always yields the same double, so hoisting it changes no bit.
SQRT_T = math.sqrt(T)
SQRT_2 = math.sqrt(2.0)


@dataclass(frozen=True)
class SimConfig:
    """A validated `configUsed`: the engine trusts it and echoes it in `backtestResult`.

    Dates are already `YYYY-MM-DD` strings, because the result echoes them in that form whatever
    shape (date-time string, Firestore timestamp) the client submitted.
    """

    starting_capital: float
    max_cycles: int
    strategy_id: str
    label: str | None
    symbol: str
    start_date: str
    end_date: str
    data_source: Literal["inline", "history"]
