"""Builders shared by the chart-export tests: fake keys, stub key tables, requests."""

from __future__ import annotations

from typing import Any

from states.chart_export.chart_api import TIMEFRAMES, Account, ChartRequest

# Fake keys that look like nothing real; every test that could leak one checks for it.
KEY_1 = "test-only-not-a-real-key-acc-1"
KEY_2 = "test-only-not-a-real-key-acc-2"
ACC_1 = Account("acc-1", KEY_1, 44)
ACC_2 = Account("acc-2", KEY_2, 44)


def keys(
    *accounts: Account, daily_limit: int = 44, used_today: int = 0
) -> dict[str, dict[str, Any]]:
    """The stub's `keys` table for the given accounts (default: acc-1 only)."""
    return {
        acc.api_key: {"accountId": acc.id, "dailyLimit": daily_limit, "usedToday": used_today}
        for acc in (accounts or (ACC_1,))
    }


def chart_request(
    symbol: str = "BINANCE:BTCUSDT",
    timeframe: str = "1M",
    template_id: str = "ctpl_price_ma1226_vol_v1",
    studies: tuple[str, ...] = ("Moving Average Double", "Volume"),
    **extra: Any,
) -> ChartRequest:
    """A request whose body is what the worker would send for a template (height 600)."""
    tf = TIMEFRAMES[timeframe]
    body: dict[str, Any] = {
        "height": 600,
        "style": "candle",
        "studies": [{"name": name} for name in studies],
        "symbol": symbol,
        "interval": tf.interval,
        "timezone": "Etc/UTC",
    }
    body.update(extra)
    return ChartRequest(template_id, symbol, tf.interval, tf.token, body)
