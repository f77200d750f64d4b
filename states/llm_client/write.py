"""RUNNING.write: the report artifact, exactly once (SPEC §11).

The path is deterministic and the write is create-only: if the object already exists, an earlier
execution of this step wrote it, and its URI is reused rather than overwritten.
"""

from __future__ import annotations

import time

import msgspec

from engine.clock import elapsed_ms, rfc3339
from engine.errors import Failure, StoreUnavailable
from engine.lifecycle import Next
from states.llm_client.contracts import LLMReportFile, ReportInputs, ReportLLM, ReportMetadata
from states.llm_client.errors import ErrorCode
from states.llm_client.phases import Validated, Written
from states.llm_client.resolve import schema_version
from states.llm_client.unit import LlmUnit, step, step_id, unit_report_uri


def build_report(unit: LlmUnit, validated: Validated) -> LLMReportFile:
    generated = validated.generated
    resolved = generated.assembled.resolved
    context = generated.assembled.context
    response = generated.response
    now = rfc3339(unit.now())
    return LLMReportFile(
        metadata=ReportMetadata(
            schema_version=schema_version(resolved.schema_id),
            run_id=unit.doc_id,
            step_id=step_id(unit),
            created_at=now,
            finished_at=now,
            symbol=unit.doc.symbol or "",
            timeframe=step(unit).timeframe or "",
            llm=ReportLLM(
                prompt_id=resolved.prompt_id,
                model_name=resolved.profile.effective_model or "",
                finish_reason=response.finish_reason or "FINISH_REASON_UNSPECIFIED",
                schema_id=resolved.schema_id,
                schema_sha256=resolved.schema_sha256,
                llm_profile=resolved.profile_raw,
                model_version=response.model_version,
                usage_metadata=response.usage_metadata,
            ),
            inputs=ReportInputs(
                ohlcv_gcs_uri=context.ohlcv_uri,
                charts_outputsManifestGcsUri=context.manifest_uri,
                report_gcs_uris=context.report_uris or None,
            ),
        ),
        output=validated.output,
    )


def enter(unit: LlmUnit, validated: Validated) -> Next:
    if not unit.doc.symbol:
        raise Failure(ErrorCode.INVALID_STEP_INPUTS, "flow run scope.symbol is required")
    uri = unit_report_uri(unit)
    data = msgspec.json.encode(build_report(unit, validated))
    unit.budget.require("gcs write")
    unit.log.info("gcs_write_started", gcsUri=uri, bytes=len(data))
    started = time.monotonic()
    try:
        created = unit.ports.blobs.create(uri, data, "application/json")
    except StoreUnavailable as exc:
        unit.log.error("gcs_write_finished", gcsUri=uri, status="error")
        raise Failure(ErrorCode.GCS_WRITE_FAILED, exc.message) from None
    unit.log.info(
        "gcs_write_finished",
        gcsUri=uri,
        status="created" if created else "reused",
        bytes=len(data),
        created=created,
        durationMs=elapsed_ms(started),
    )
    return "written", Written(validated, uri, reused=not created)
