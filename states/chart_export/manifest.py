"""RUNNING.manifest: the charts manifest, written last and only when the step succeeds (§10).

An existing manifest therefore always means success. It is validated against its schema (a
failure is ours: WORKER_INTERNAL_ERROR), bounded at 65536 bytes (the LLM worker's JSON limit),
compact UTF-8, and written create-only: a 412 means an earlier or concurrent execution of this
step already succeeded, and its manifest is adopted instead (§12), never overwritten.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.clock import rfc3339
from engine.errors import Failure, StoreUnavailable
from engine.lifecycle import Next
from states.chart_export.errors import ErrorCode
from states.chart_export.phases import Charts, RequestResult, Stored, Written
from states.chart_export.pngs import create
from states.chart_export.unit import ChartUnit, manifest_uri, scrubbed, step_id

SCHEMA = Path(__file__).resolve().parent / "schemas" / "charts_outputs_manifest.schema.json"
MAX_BYTES = 65_536
MESSAGE_MAX = 200


@dataclass(frozen=True)
class Existing:
    """A manifest found where ours was to be written: adopted as a `write_conflict`."""

    uri: str
    source: str = "write_conflict"


@functools.cache
def validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def failure_entry(unit: ChartUnit, result: RequestResult) -> dict[str, Any]:
    error = result.error
    assert error is not None
    details: dict[str, Any] = {}
    if error.http_status is not None:
        details["httpStatus"] = error.http_status
    details["attempts"] = len(result.attempts)
    if error.reason is not None:
        details["reason"] = error.reason
    message = scrubbed(unit, error.message)[:MESSAGE_MAX] or error.code
    return {
        "request": {"chartTemplateId": result.template_id},
        "error": {"code": error.code, "message": message, "details": details},
    }


def build(unit: ChartUnit, charts: Charts) -> dict[str, Any]:
    inputs = charts.inputs
    return {
        "schemaVersion": 1,
        "runId": unit.doc_id,
        "stepId": step_id(unit),
        "createdAt": rfc3339(unit.now()),
        "symbol": inputs.symbol,
        "timeframe": inputs.timeframe,
        "minImages": inputs.min_images,
        "requested": [{"chartTemplateId": t} for t in inputs.template_ids],
        "items": [
            {
                "chartTemplateId": r.template_id,
                "kind": r.kind,
                "generatedAt": rfc3339(r.generated_at or unit.now()),
                "png_gcs_uri": r.png_uri,
            }
            for r in charts.items
        ],
        "failures": [failure_entry(unit, r) for r in charts.failures],
    }


def encode(manifest: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, schema-valid and within the reader's limit, or a failure of ours."""
    errors = sorted(validator().iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        raise Failure(ErrorCode.WORKER_INTERNAL_ERROR, f"manifest fails its schema at {where}")
    data = json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_BYTES:
        raise Failure(
            ErrorCode.WORKER_INTERNAL_ERROR, f"manifest exceeds {MAX_BYTES} bytes ({len(data)})"
        )
    return data


def enter(unit: ChartUnit, stored: Stored) -> Next:
    uri = manifest_uri(unit)
    if uri is None:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, "the stepId cannot name a manifest object")
    data = encode(build(unit, stored.charts))
    unit.log.info("gcs_write_started", kind="manifest", gcsUri=uri, bytes=len(data))
    try:
        created = create(unit, uri, data, "application/json")
    except StoreUnavailable as exc:
        unit.log.error(
            "gcs_write_finished", kind="manifest", gcsUri=uri, reused=False, status="error"
        )
        raise Failure(
            ErrorCode.MANIFEST_WRITE_FAILED, f"manifest write failed: {exc.message}"
        ) from None
    unit.log.info("gcs_write_finished", kind="manifest", gcsUri=uri, reused=not created)
    if not created:
        return "exists", Existing(uri)
    unit.log.info(
        "manifest_written",
        gcsUri=uri,
        items=len(stored.charts.items),
        failures=len(stored.charts.failures),
    )
    return "written", Written(stored.charts, uri)
