"""An LLM_REPORT step as the engine's unit of work, and where its report lives (SPEC §11)."""

from __future__ import annotations

from engine.unit import Unit
from states.flow_run.contracts import FlowRun, Step
from states.llm_client import LLM_REPORT
from states.llm_client.config import LlmConfig
from states.llm_client.ports import LlmPorts

__all__ = ["LLM_REPORT", "LlmUnit", "report_uri", "step", "step_id", "unit_report_uri"]

LlmUnit = Unit[LlmConfig, LlmPorts, FlowRun]


def step(unit: LlmUnit) -> Step:
    return unit.doc.steps[step_id(unit)]


def step_id(unit: LlmUnit) -> str:
    assert unit.unit_id is not None, "an LLM_REPORT unit is one step"
    return unit.unit_id


def report_uri(config: LlmConfig, run_id: str, timeframe: str, step_id: str) -> str:
    """`gs://<bucket>/<prefix>/<runId>/<timeframe>/<stepId>.json`, prefix normalized: no
    attempt numbers or timestamps, so every execution of a step maps to one object."""
    parts = [p for p in config.artifacts_prefix.strip().split("/") if p.strip()]
    parts += [run_id, timeframe, f"{step_id}.json"]
    return f"gs://{config.artifacts_bucket}/" + "/".join(parts)


def unit_report_uri(unit: LlmUnit) -> str:
    return report_uri(unit.config, unit.doc_id, step(unit).timeframe or "", step_id(unit))
