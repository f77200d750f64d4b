"""The one failure the engine reports on purpose (BACKTEST §14 `ENGINE_ERROR`)."""

from __future__ import annotations


class EngineError(Exception):
    """A computation left the finite doubles (an overflowing price, premium or equity).

    The message is stored as the job's `errorMessage`, so it names what went wrong and never a
    price or an amount.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
