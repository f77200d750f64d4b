"""The backtest worker as the engine sees it: Wheel-strategy backtests of `backtestJobs/{jobId}`
(docs/spec/BACKTEST.md).

Its table, states and ports load with the first job's run, so a cold instance serving only
ignored events imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.runner import Worker
from states.backtest.source import BacktestJobs, scan_report

if TYPE_CHECKING:
    from states.backtest.config import BacktestConfig
    from states.backtest.ports import BacktestPorts


def source(config: BacktestConfig, ports: BacktestPorts) -> BacktestJobs:
    return BacktestJobs(config.jobs_collection)


WORKER: Worker[Any, Any, Any] = Worker(
    name="backtest",
    table="states.backtest.table.LIFECYCLE",
    source=source,
    id_field="jobId",
    unit_field=None,  # the job document is the unit
    lease_on_events=True,  # §8.2: a running job met by any event is expired by its lease
    scan_report=scan_report,
    scan_event="sweep_finished",
    contained=True,  # §1: the handler returns normally for every outcome
)
