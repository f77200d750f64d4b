"""RUNNING.finalize of a CHART_EXPORT step: the outcome with exactly the fields of §11.

Success: `status`, `finishedAt`, `outputs = {gcs_uri, outputsManifestGcsUri, execution}`, both
URIs the manifest's. Failure: `status`, `finishedAt`, `error = {code, message, details}`,
`outputs = {execution}`, no URI. `execution` reports every request as far as the step got —
the record the step had reached when it failed is `unit.last` — and never a key, anything
derived from one, or a provider body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.clock import rfc3339, span_ms
from engine.lifecycle import Next
from states.chart_export.phases import Adopted, Charts, RequestResult, Written
from states.chart_export.unit import ChartUnit, scrubbed
from states.flow_run.finalize import finalize


def enter(unit: ChartUnit, result: Written | Adopted | None) -> Next:
    finished = unit.now()
    fields: dict[str, Any] = {"finishedAt": rfc3339(finished)}
    run_execution = execution(unit, finished, result)
    if unit.failure is None:
        assert isinstance(result, Written | Adopted), (
            "a success reaches the finalize with its manifest"
        )
        fields["status"] = "SUCCEEDED"
        fields["outputs"] = {
            "gcs_uri": result.uri,
            "outputsManifestGcsUri": result.uri,
            "execution": run_execution,
        }
        completed: dict[str, Any] = {
            "gcsUri": result.uri,
            "reused": isinstance(result, Adopted),
            "items": run_execution.get("itemsCount"),
        }
    else:
        error = unit.failure.as_error()
        error["message"] = scrubbed(unit, error["message"])
        fields["status"] = "FAILED"
        fields["error"] = error
        fields["outputs"] = {"execution": run_execution}
        completed = {"attempts": run_execution["chartImg"]["attemptsTotal"]}
    return finalize(unit, fields, completed)


def reached(unit: ChartUnit, result: Written | Adopted | None) -> Charts | Adopted | None:
    """What the step got to: its manifest, or the last record a failing state received."""
    if isinstance(result, Adopted):
        return result
    if isinstance(result, Written):
        return result.charts
    charts = getattr(unit.last, "charts", None)
    return charts if isinstance(charts, Charts) else None


def execution(
    unit: ChartUnit, finished: datetime, result: Written | Adopted | None
) -> dict[str, Any]:
    claimed = unit.claim.started_at if unit.claim is not None else None
    started = claimed or finished
    run: dict[str, Any] = {
        "timing": {
            "startedAt": rfc3339(started),
            "finishedAt": rfc3339(finished),
            "durationMs": span_ms(started, finished),
        },
        "reused": False,
    }
    chart_img: dict[str, Any] = {
        "mode": unit.config.mode,
        "attemptsTotal": 0,
        "accountsUsed": [],
        "requests": [],
    }
    got = reached(unit, result)
    if isinstance(got, Adopted):
        run["reused"] = True
        run.update(minImages=got.min_images, itemsCount=got.items, failuresCount=got.failures)
    elif isinstance(got, Charts):
        run.update(
            minImages=got.inputs.min_images,
            itemsCount=len(got.items),
            failuresCount=len(got.failures),
        )
        chart_img.update(
            attemptsTotal=got.attempts_total,
            accountsUsed=list(got.accounts_used),
            requests=[request_execution(r) for r in got.results],
        )
    run["chartImg"] = chart_img
    return run


def request_execution(result: RequestResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"chartTemplateId": result.template_id, "outcome": result.outcome}
    if result.request is not None:
        entry["chartImgSymbol"] = result.request.chart_img_symbol
        entry["interval"] = result.request.interval
    entry["attempts"] = [
        {"accountId": a.account_id, "httpStatus": a.http_status, "kind": a.kind}
        for a in result.attempts
    ]
    if result.is_item:
        entry["pngGcsUri"] = result.png_uri
    if result.outcome == "failed" and result.error is not None:
        entry["errorCode"] = result.error.code
    if result.outcome != "not_attempted":
        entry["durationMs"] = result.duration_ms or 0
    return entry
