"""RUNNING.shortfall: fewer images than `minImages` — the step fails with the §11 code.

Reached before any reservation when too few requests are renderable (pre-flight, §4: the
renderable ones stay `not_attempted`), or after the renders. With shortfall = minImages -
itemsCount, the step carries the code of the first failed request (request order) with a
retryable code when at least `shortfall` failed requests have one — a retry of the step can
then reach minImages — else the code of the first failed request with a non-retryable code.
"""

from __future__ import annotations

from engine.errors import Failure
from engine.lifecycle import Next
from states.chart_export.errors import ErrorCode, retryable
from states.chart_export.phases import Charts, Planned, RequestResult, Stored
from states.chart_export.unit import ChartUnit


def enter(unit: ChartUnit, reached: Planned | Stored) -> Next:
    raise step_failure(reached.charts)


def step_failure(charts: Charts) -> Failure:
    items = len(charts.items)
    min_images = charts.inputs.min_images
    failed = charts.failures
    chosen = decisive(failed, min_images - items)
    if chosen is None or chosen.error is None:  # nothing failed, yet too few images
        code, named = str(ErrorCode.TIME_BUDGET_EXCEEDED), ""
    else:
        code = chosen.error.code
        status = chosen.error.http_status
        named = f": {chosen.template_id} {code}" + (f" http {status}" if status is not None else "")
    return Failure(
        code,
        f"images {items}/{min_images}{named}",
        {
            "minImages": min_images,
            "itemsCount": items,
            "failures": [
                {"chartTemplateId": r.template_id, "code": r.error.code if r.error else code}
                for r in failed
            ],
        },
    )


def decisive(failed: tuple[RequestResult, ...], shortfall: int) -> RequestResult | None:
    transient = [r for r in failed if r.error is not None and retryable(r.error.code)]
    if transient and len(transient) >= shortfall:
        return transient[0]
    permanent = [r for r in failed if r.error is not None and not retryable(r.error.code)]
    return permanent[0] if permanent else (transient[0] if transient else None)
