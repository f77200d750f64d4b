"""A CHART_EXPORT step as the engine's unit of work, and where its objects live (§10)."""

from __future__ import annotations

from engine.names import object_name_problem
from engine.unit import Unit
from states.chart_export.config import ChartConfig
from states.chart_export.ports import ChartPorts
from states.flow_run.contracts import FlowRun, Step

ChartUnit = Unit[ChartConfig, ChartPorts, FlowRun]


def step_id(unit: ChartUnit) -> str:
    assert unit.unit_id is not None, "a CHART_EXPORT unit is one step"
    return unit.unit_id


def step(unit: ChartUnit) -> Step:
    return unit.doc.steps[step_id(unit)]


def folder(config: ChartConfig, run_id: str, step_id: str) -> str:
    """`gs://<bucket>/<prefix>charts/<runId>/<stepId>/`: no timestamps, attempt numbers or
    account ids, so a retried, duplicated or reset step maps to the same objects."""
    parts = [p for p in config.artifacts_prefix.strip().split("/") if p.strip()]
    parts += ["charts", run_id, step_id]
    return f"gs://{config.artifacts_bucket}/" + "/".join(parts) + "/"


def manifest_uri(unit: ChartUnit) -> str | None:
    """The step's manifest, or None when its name could not be an object (then none exists)."""
    uri = folder(unit.config, unit.doc_id, step_id(unit)) + "manifest.json"
    return uri if object_name_problem(uri.split("/", 3)[3]) is None else None


def png_uri(unit: ChartUnit, symbol: str, timeframe: str, template_id: str) -> str:
    """`<folder><scope.symbol>_<timeframe>_<chartTemplateId>.png`, flow-run spellings."""
    return (
        folder(unit.config, unit.doc_id, step_id(unit)) + f"{symbol}_{timeframe}_{template_id}.png"
    )


def scrubbed(unit: ChartUnit, text: str) -> str:
    """`text` with every configured account key removed: a provider message is already redacted
    of the key its attempt used, and nothing stored may hold any other either (§15)."""
    for secret in unit.config.secrets:
        if secret and secret in text:
            text = text.replace(secret, "[redacted]")
    return text
