"""RUNNING.simulate: engine 1.0.0 over the resolved path (BACKTEST §9), at most once per job.

The engine is pure and called directly (it is not I/O). Its own failure (`EngineError`: a
premium or an equity left the finite doubles) and anything unexpected in it end the job
`ENGINE_ERROR`, with the exception's type in the log only. The canonical JSON is made here
once: its size decides RESULT_TOO_LARGE and its hash is the stored `resultSha256`.
"""

from __future__ import annotations

import hashlib
import time

from engine.clock import elapsed_ms
from engine.errors import Failure
from engine.lifecycle import Next
from states.backtest.errors import ErrorCode
from states.backtest.phases import Priced, Simulated
from states.backtest.unit import JobUnit
from wheelsim import EngineError, canonical_json, simulate


def enter(unit: JobUnit, priced: Priced) -> Next:
    unit.budget.require("the engine")
    points = len(priced.prices)
    unit.log.info("engine_started", points=points)
    started = time.monotonic()
    config = priced.owned.job.config
    try:
        result = simulate(config, priced.prices, priced.dates)
        canonical = canonical_json(result)
    except EngineError as exc:
        unit.log.warning(
            "engine_finished",
            points=points,
            cyclesCompleted=None,
            status="error",
            **timing(started),
        )
        raise Failure(ErrorCode.ENGINE_ERROR, exc.message) from None
    except Exception as exc:
        unit.log.error(
            "engine_finished",
            points=points,
            cyclesCompleted=None,
            status="error",
            exceptionType=type(exc).__name__,
            **timing(started),
        )
        raise Failure(
            ErrorCode.ENGINE_ERROR, f"engine: unexpected {type(exc).__name__} in the engine"
        ) from None
    unit.log.info(
        "engine_finished",
        points=points,
        cyclesCompleted=result["cyclesCompleted"],
        status="ok",
        **timing(started),
    )
    return "simulated", Simulated(
        priced, result, len(canonical), hashlib.sha256(canonical).hexdigest()
    )


def timing(started: float) -> dict[str, int]:
    return {"durationMs": elapsed_ms(started)}
