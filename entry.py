"""The Cloud Functions entry points (gen2), one pair per worker: the Firestore-triggered
function and the stale-work recovery its Cloud Scheduler job calls. Everything else is built
by the composition root (`compose.py`), once per instance, on first use."""

from __future__ import annotations

from typing import Any

import functions_framework

import compose


@functions_framework.cloud_event
def on_flow_run_updated(cloud_event: Any) -> None:
    """worker_llm_client: Eventarc Firestore events on `flow_runs/{runId}` (SPEC §1)."""
    compose.deliver("llm_client", cloud_event)


@functions_framework.http
def recover_stale_steps(request: Any) -> tuple[str, int, dict[str, str]]:
    """worker_llm_client: stale-step recovery over all RUNNING flow runs (Cloud Scheduler)."""
    return compose.recover("llm_client")


@functions_framework.cloud_event
def on_chart_export_flow_run_updated(cloud_event: Any) -> None:
    """worker_chart_export: Eventarc Firestore events on `flow_runs/{runId}` (CHART_EXPORT §1)."""
    compose.deliver("chart_export", cloud_event)


@functions_framework.http
def recover_stale_chart_steps(request: Any) -> tuple[str, int, dict[str, str]]:
    """worker_chart_export: stale-step recovery over all RUNNING flow runs (Cloud Scheduler)."""
    return compose.recover("chart_export")


@functions_framework.cloud_event
def on_backtest_job_written(cloud_event: Any) -> None:
    """worker_backtest: Eventarc Firestore events on `backtestJobs/{jobId}` (BACKTEST §1)."""
    compose.deliver("backtest", cloud_event)


@functions_framework.http
def sweep_stale_jobs(request: Any) -> tuple[str, int, dict[str, str]]:
    """worker_backtest: the sweeper of running jobs past their lease (BACKTEST §8.3)."""
    return compose.recover("backtest")
