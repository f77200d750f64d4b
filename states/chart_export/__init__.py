"""The worker that executes CHART_EXPORT steps of flow runs with Chart-IMG
(docs/spec/CHART_EXPORT.md): its lifecycle table, one module per state, its contracts and ports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.runner import Worker
from states.flow_run.source import FlowRunSteps, scan_report

if TYPE_CHECKING:
    from states.chart_export.config import ChartConfig
    from states.chart_export.ports import ChartPorts

CHART_EXPORT = "CHART_EXPORT"


def source(config: ChartConfig, ports: ChartPorts) -> FlowRunSteps:
    return FlowRunSteps(CHART_EXPORT, config.flow_runs_collection, ports.store)


WORKER: Worker[Any, Any, Any] = Worker(
    name="chart_export",
    table="states.chart_export.table.LIFECYCLE",
    source=source,
    id_field="runId",
    unit_field="stepId",
    scan_report=scan_report,
)
