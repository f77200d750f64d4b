"""Engine 1.0.0 run time for 500 and 5000 points (BACKTEST §10: < 1 s at 5000).

Pure CPU, no services: a seeded random walk with a capital that keeps the Wheel trading, so every
transition (puts, assignments, calls, call-aways, regimes) is on the measured path. The growth
factor between the two sizes shows whether the run stays linear in the number of points.
`uv run python -m bench.backtest_engine`.
"""

from __future__ import annotations

import datetime
import random
import statistics
import time
from collections.abc import Callable

from bench.common import summary
from wheelsim import SimConfig, result_sha256, simulate

SIZES = (500, 5000)
WARMUP = 3


def price_path(points: int, seed: int = 20240101) -> tuple[list[float], list[str]]:
    walk = random.Random(seed)
    prices = [100.0]
    while len(prices) < points:
        prices.append(round(max(0.01, prices[-1] * (1.0 + walk.gauss(0.0003, 0.02))), 2))
    start = datetime.date(2024, 1, 1)
    dates = [(start + datetime.timedelta(days=i)).isoformat() for i in range(points)]
    return prices, dates


def timed_ms(action: Callable[[], object], runs: int) -> list[float]:
    for _ in range(WARMUP):
        action()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main(runs: int = 50) -> None:
    config = SimConfig(
        starting_capital=100_000.0,
        max_cycles=1000,
        strategy_id="wheel",
        label=None,
        symbol="BENCH",
        start_date="2024-01-01",
        end_date="2099-12-31",
        data_source="inline",
    )
    medians: dict[int, float] = {}
    for points in SIZES:
        prices, dates = price_path(points)
        result = simulate(config, prices, dates)
        times = timed_ms(lambda: simulate(config, prices, dates), runs)  # noqa: B023
        medians[points] = statistics.median(times)
        print(summary(f"simulate, {points} points ({result['cyclesCompleted']} cycles)", times))
        hashing = timed_ms(lambda: result_sha256(result), runs)  # noqa: B023
        print(summary("  canonical JSON + SHA-256 of that result", hashing))
    small, large = SIZES
    growth = medians[large] / medians[small]
    print(f"growth {small} -> {large} points: x{growth:.1f} (x{large / small:.0f} if linear)")


if __name__ == "__main__":
    main()
