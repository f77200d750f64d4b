"""A backtest job as the engine's unit of work: the job document itself (unit id None)."""

from __future__ import annotations

from engine.unit import Unit
from states.backtest.config import BacktestConfig
from states.backtest.job import Job
from states.backtest.ports import BacktestPorts

JobUnit = Unit[BacktestConfig, BacktestPorts, Job]
