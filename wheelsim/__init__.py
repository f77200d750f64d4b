"""Wheel-strategy backtest engine 1.0.0 (BACKTEST §9): a pure function of config and prices.

Standard library only, no clock, randomness or I/O, so that the same job gives the same
`backtestResult` (and hash) in any process on any platform with the same `math` library.
"""

from wheelsim.config import ENGINE_VERSION, MAX_POINTS, SUPPORTED_ENGINE_VERSIONS, SimConfig
from wheelsim.errors import EngineError
from wheelsim.machine import Cycle, Trace, simulate_trace
from wheelsim.result import canonical_json, result_sha256, simulate

__all__ = [
    "ENGINE_VERSION",
    "MAX_POINTS",
    "SUPPORTED_ENGINE_VERSIONS",
    "Cycle",
    "EngineError",
    "SimConfig",
    "Trace",
    "canonical_json",
    "result_sha256",
    "simulate",
    "simulate_trace",
]
