"""RUNNING.templates: every request's chart template checked and its request built (§4, §5).

All before the step's first Chart-IMG call, and without touching any quota. A request whose
template is missing or fails a check is a failed request (`CHART_TEMPLATE_NOT_FOUND`,
`CHART_TEMPLATE_INVALID` with the first failing `reason`), a read that fails or times out is
`FIRESTORE_UNAVAILABLE`; the others are built and wait for the render. The guarded edges that
follow decide the pre-flight: fewer renderable requests than `minImages` fail the step at once.

Templates are immutable by contract, so valid ones are cached for the instance's life; "not
found" and "invalid" never are (a fixed document is picked up by the next event). The cache
holds what passed the template's own checks: the symbol check depends on the step's symbol
and runs for every step.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from pathlib import Path
from typing import Any

from engine.clock import elapsed_ms
from engine.errors import StoreUnavailable
from engine.lifecycle import Next
from engine.ports import JsonObject
from states.chart_export.chart_api import (
    CHART_IMG_SYMBOL_RE,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    ChartRequest,
    Plan,
)
from states.chart_export.errors import ErrorCode
from states.chart_export.phases import (
    Charts,
    Checked,
    Planned,
    RequestError,
    RequestResult,
    StepInputs,
)
from states.chart_export.unit import ChartUnit, png_uri

SCHEMA = Path(__file__).resolve().parent / "schemas" / "chart_template.schema.json"
PLACEHOLDER = "{symbol}"


@functools.cache
def validator() -> Any:
    """The template schema's validator (a copy of the contract's, shipped with the package)."""
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def problem(template_id: str, document: JsonObject, plan: Plan) -> str | None:
    """The first failing check of §4 that depends on the template alone, as its `reason`."""
    pattern = document.get("chartImgSymbolTemplate")
    if not isinstance(pattern, str) or pattern.count(PLACEHOLDER) != 1:
        return "symbol_placeholder"
    if not validator().is_valid(document):
        return "schema"
    if document.get("id") != template_id:
        return "id_mismatch"
    body = document["request"]
    if body.get("width", DEFAULT_WIDTH) > plan.max_width or (
        body.get("height", DEFAULT_HEIGHT) > plan.max_height
    ):
        return "resolution"
    parameters = len(body.get("studies", [])) + len(body.get("drawings", []))
    if parameters > plan.max_studies_drawings:
        return "parameter_limit"
    return None


def chart_img_symbol(document: JsonObject, symbol: str) -> str:
    """§5: `{symbol}` replaced by the step's symbol (`BINANCE:{symbol}` → `BINANCE:BTCUSDT`)."""
    pattern: str = document["chartImgSymbolTemplate"]
    return pattern.replace(PLACEHOLDER, symbol)


def build(
    document: JsonObject, template_id: str, inputs: StepInputs, timezone: str
) -> ChartRequest:
    """§6: a deep copy of the template's `request`, then symbol, interval and timezone; nothing
    else, no OHLCV data."""
    body: dict[str, Any] = copy.deepcopy(document["request"])
    symbol = chart_img_symbol(document, inputs.symbol)
    body["symbol"] = symbol
    body["interval"] = inputs.interval
    body["timezone"] = timezone
    return ChartRequest(template_id, symbol, inputs.interval, inputs.token, body)


def load(unit: ChartUnit, template_id: str) -> tuple[JsonObject | None, RequestError | None]:
    """The valid template document, or why the request cannot use it."""
    cached = unit.ports.template_cache.get(template_id)
    if cached is not None:
        unit.log.debug("chart_template_loaded", chartTemplateId=template_id, cached=True)
        return cached, None
    try:
        document = unit.ports.templates.template(template_id)
    except StoreUnavailable as exc:
        unit.log.error(
            "chart_template_read_failed",
            chartTemplateId=template_id,
            exceptionType=type(exc).__name__,
        )
        return None, RequestError(ErrorCode.FIRESTORE_UNAVAILABLE, "chart template read failed")
    if document is None:
        unit.log.warning("chart_template_not_found", chartTemplateId=template_id)
        return None, RequestError(ErrorCode.CHART_TEMPLATE_NOT_FOUND, "chart template not found")
    reason = problem(template_id, document, unit.config.plan)
    if reason is not None:
        unit.log.warning("chart_template_invalid", chartTemplateId=template_id, reason=reason)
        return None, invalid(reason)
    unit.ports.template_cache.keep(template_id, document)
    unit.log.info("chart_template_loaded", chartTemplateId=template_id, cached=False)
    return document, None


def invalid(reason: str) -> RequestError:
    return RequestError(
        ErrorCode.CHART_TEMPLATE_INVALID, f"chart template invalid: {reason}", reason=reason
    )


def enter(unit: ChartUnit, checked: Checked) -> Next:
    inputs = checked.inputs
    results = []
    for template_id in inputs.template_ids:
        started = time.monotonic()
        uri = png_uri(unit, inputs.symbol, inputs.timeframe, template_id)
        document, error = load(unit, template_id)
        if document is not None:
            symbol = chart_img_symbol(document, inputs.symbol)
            if not CHART_IMG_SYMBOL_RE.fullmatch(symbol):
                unit.log.warning(
                    "chart_template_invalid", chartTemplateId=template_id, reason="symbol_result"
                )
                error = invalid("symbol_result")
        result = RequestResult(template_id, "not_attempted", uri)
        if document is None or error is not None:
            elapsed = elapsed_ms(started)
            assert error is not None
            results.append(result.failed(error, elapsed))
            continue
        request = build(document, template_id, inputs, unit.config.timezone)
        unit.log.info(
            "chart_request_built",
            chartTemplateId=template_id,
            chartImgSymbol=request.chart_img_symbol,
            interval=request.interval,
            studies=[s.get("name") for s in request.body.get("studies", [])],
        )
        results.append(
            RequestResult(
                template_id, "not_attempted", uri, request=request, kind=document["description"]
            )
        )
    return "planned", Planned(Charts(inputs, tuple(results)))
