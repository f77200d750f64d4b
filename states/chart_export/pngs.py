"""RUNNING.pngs: every rendered PNG stored, create-only, under its fixed name (§10).

`if_generation_match=0`: an object already there (412) was written by an earlier or concurrent
execution of this step from the same request, so it is reused, never overwritten. Other errors
get 3 tries, 0.5 s then 1 s apart (the adapter's own transient retry runs inside each, bounded
at 60 s), after which the request fails `GCS_WRITE_FAILED`. Always attempted, whatever time is
left: the images are paid for.
"""

from __future__ import annotations

from dataclasses import replace

from engine.errors import StoreUnavailable
from engine.lifecycle import Next
from states.chart_export.errors import ErrorCode
from states.chart_export.phases import Rendered, RequestError, RequestResult, Stored
from states.chart_export.unit import ChartUnit

PAUSES_S = (0.5, 1.0)  # between the 3 tries
PNG = "image/png"


def enter(unit: ChartUnit, rendered: Rendered) -> Next:
    charts = rendered.charts
    results = tuple(
        store(unit, r) if r.outcome == "rendered" and r.png is not None else r
        for r in charts.results
    )
    return "stored", Stored(replace(charts, results=results))


def store(unit: ChartUnit, result: RequestResult) -> RequestResult:
    assert result.png is not None
    uri = result.png_uri
    unit.log.info("gcs_write_started", kind="png", gcsUri=uri, bytes=len(result.png))
    try:
        created = create(unit, uri, result.png, PNG)
    except StoreUnavailable as exc:
        unit.log.error("gcs_write_finished", kind="png", gcsUri=uri, reused=False, status="error")
        return result.failed(
            RequestError(ErrorCode.GCS_WRITE_FAILED, f"png write failed: {exc.message}"[:200])
        )
    unit.log.info("gcs_write_finished", kind="png", gcsUri=uri, reused=not created)
    return replace(result, png=None)


def create(unit: ChartUnit, uri: str, data: bytes, content_type: str) -> bool:
    """Create-only with 3 tries; True when created, False when the object already existed."""
    for pause in (*PAUSES_S, None):
        try:
            return unit.ports.blobs.create(uri, data, content_type)
        except StoreUnavailable:
            if pause is None:
                raise
            unit.ports.sleep(pause)
    raise AssertionError("unreachable")
