"""RUNNING.probe: is the step's report already written? (SPEC §5, issue 8 item 7)

After our claim, a report an earlier attempt uploaded (the client timed out after it landed) is
adopted before any Gemini call; for a step another invocation owns, it is the split-brain
recovery. A step whose timeframe or name cannot hold a report has none.
"""

from __future__ import annotations

from typing import Any

from engine.lifecycle import Next
from engine.names import object_name_problem
from states.flow_run.probe import probe
from states.llm_client.unit import LlmUnit, step, unit_report_uri


def enter(unit: LlmUnit, _: Any) -> Next:
    return probe(unit, report_location(unit), unit.ports.blobs.exists, "report")


def report_location(unit: LlmUnit) -> str | None:
    timeframe = step(unit).timeframe
    if not timeframe or "/" in timeframe:
        return None
    uri = unit_report_uri(unit)
    return uri if object_name_problem(uri.split("/", 3)[3]) is None else None
