"""The worker that executes LLM_REPORT steps of flow runs with Gemini (docs/spec/SPEC.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.runner import Worker
from states.flow_run.source import FlowRunSteps, scan_report

if TYPE_CHECKING:
    from states.llm_client.config import LlmConfig
    from states.llm_client.ports import LlmPorts

LLM_REPORT = "LLM_REPORT"


def source(config: LlmConfig, ports: LlmPorts) -> FlowRunSteps:
    return FlowRunSteps(LLM_REPORT, config.flow_runs_collection, ports.store)


WORKER: Worker[Any, Any, Any] = Worker(
    name="llm_client",
    table="states.llm_client.table.LIFECYCLE",
    source=source,
    id_field="runId",
    unit_field="stepId",
    scan_report=scan_report,
)
