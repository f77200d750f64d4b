"""RUNNING.inputs: the step's inputs, checked after the claim on the document read for it (§3).

In the spec's order (after the unknown dependency that made selection claim the step): symbol,
timeframe, requests, minImages. The first violation fails the step INVALID_STEP_INPUTS with
`details = {field}` before any template read, reservation or call. Messages name the field and
the rule and quote at most 64 characters of the offending value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.errors import Failure
from engine.lifecycle import Next
from states.chart_export.chart_api import TIMEFRAMES
from states.chart_export.errors import ErrorCode
from states.chart_export.phases import Checked, StepInputs
from states.chart_export.unit import ChartUnit, step, step_id

SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
TEMPLATE_ID_RE = re.compile(r"^ctpl_[a-z0-9]+(?:_[a-z0-9]+)*_v[1-9][0-9]*$")
TEMPLATE_ID_MAX = 128
MAX_REQUESTS = 10
QUOTE_MAX = 64


def shown(value: Any) -> str:
    """At most 64 characters of a value, control characters escaped: safe in a message."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text if len(text) <= QUOTE_MAX else text[: QUOTE_MAX - 1] + "…"


def invalid(unit: ChartUnit, field: str, message: str) -> Failure:
    unit.log.warning("step_inputs_invalid", field=field)
    return Failure(ErrorCode.INVALID_STEP_INPUTS, message, {"field": field})


def enter(unit: ChartUnit, _: Any) -> Next:
    own = step(unit)
    unknown = [dep for dep in own.dependencies if dep not in unit.doc.steps]
    if unknown:
        raise invalid(
            unit, "dependsOn", f"dependsOn names an unknown step: {shown(', '.join(unknown))}"
        )
    symbol = unit.doc.symbol
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
        raise invalid(
            unit,
            "scope.symbol",
            "scope.symbol must be a base symbol matching ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$ "
            f"(got {shown(symbol)})",
        )
    timeframe = own.timeframe
    mapped = TIMEFRAMES.get(timeframe) if isinstance(timeframe, str) else None
    if timeframe is None or mapped is None:
        raise invalid(
            unit,
            "timeframe",
            f"timeframe must be one of the supported timeframes (got {shown(timeframe)})",
        )
    parts = step_id(unit).split(":")
    if len(parts) >= 3 and parts[0] == "charts" and parts[1] != timeframe:
        raise invalid(
            unit,
            "timeframe",
            f"timeframe must equal the stepId's charts:<tf>: part (got {shown(timeframe)} "
            f"for {shown(parts[1])})",
        )
    template_ids = requests(unit, own.inputs.get("requests"))
    min_images = own.inputs.get("minImages", None)
    if "minImages" not in own.inputs:
        raise invalid(unit, "inputs.minImages", "inputs.minImages is required")
    if isinstance(min_images, bool) or not isinstance(min_images, int):
        raise invalid(
            unit,
            "inputs.minImages",
            f"inputs.minImages must be an integer (got {shown(min_images)})",
        )
    if not 0 <= min_images <= len(template_ids):
        raise invalid(
            unit,
            "inputs.minImages",
            f"inputs.minImages must be between 0 and {len(template_ids)} (got {min_images})",
        )
    return "checked", Checked(
        StepInputs(
            symbol=symbol,
            timeframe=timeframe,
            interval=mapped.interval,
            token=mapped.token,
            template_ids=template_ids,
            min_images=min_images,
        )
    )


def requests(unit: ChartUnit, value: Any) -> tuple[str, ...]:
    """1-10 objects, each exactly `{chartTemplateId}` with a valid id, no id twice."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_REQUESTS:
        raise invalid(
            unit,
            "inputs.requests",
            f"inputs.requests must be a list of 1 to {MAX_REQUESTS} objects",
        )
    ids: list[str] = []
    for index, item in enumerate(value):
        where = f"inputs.requests[{index}]"
        if not isinstance(item, dict) or set(item) != {"chartTemplateId"}:
            extra = sorted(set(item) - {"chartTemplateId"}) if isinstance(item, dict) else []
            detail = f"; unexpected {shown(', '.join(map(str, extra)))}" if extra else ""
            raise invalid(unit, where, f"{where} must be exactly {{chartTemplateId}}{detail}")
        template_id = item["chartTemplateId"]
        field = f"{where}.chartTemplateId"
        if (
            not isinstance(template_id, str)
            or len(template_id) > TEMPLATE_ID_MAX
            or not TEMPLATE_ID_RE.fullmatch(template_id)
        ):
            raise invalid(
                unit,
                field,
                f"{field} must match ^ctpl_[a-z0-9]+(?:_[a-z0-9]+)*_v[1-9][0-9]*$ "
                f"(≤ {TEMPLATE_ID_MAX} chars; got {shown(template_id)})",
            )
        if template_id in ids:
            raise invalid(unit, field, f"{field} repeats {shown(template_id)}")
        ids.append(template_id)
    return tuple(ids)
