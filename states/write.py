"""RUNNING.write: the report artifact, exactly once (SPEC §11).

The path is deterministic and the write is create-only: if the object already exists, an earlier
execution of this step wrote it, and its URI is reused rather than overwritten.
"""

from __future__ import annotations

import time

import msgspec

from engine.clock import rfc3339
from engine.contracts import LLMReportFile, ReportInputs, ReportLLM, ReportMetadata
from engine.errors import ErrorCode, StepFailure, StoreUnavailable
from engine.step_run import StepRun
from states.artifact import artifact_uri
from states.resolve import schema_version


def build_report(run: StepRun) -> LLMReportFile:
    assert run.response is not None and run.context is not None and run.output is not None
    assert run.profile is not None and run.schema_id is not None and run.prompt_id is not None
    now = rfc3339(run.now())
    response = run.response
    return LLMReportFile(
        metadata=ReportMetadata(
            schema_version=schema_version(run.schema_id),
            run_id=run.run_id,
            step_id=run.step_id,
            created_at=now,
            finished_at=now,
            symbol=run.flow_run.symbol or "",
            timeframe=run.step.timeframe or "",
            llm=ReportLLM(
                prompt_id=run.prompt_id,
                model_name=run.profile.effective_model or "",
                finish_reason=response.finish_reason or "FINISH_REASON_UNSPECIFIED",
                schema_id=run.schema_id,
                schema_sha256=run.schema_sha256,
                llm_profile=run.profile_raw,
                model_version=response.model_version,
                usage_metadata=response.usage_metadata,
            ),
            inputs=ReportInputs(
                ohlcv_gcs_uri=run.context.ohlcv_uri,
                charts_outputsManifestGcsUri=run.context.manifest_uri,
                report_gcs_uris=run.context.report_uris or None,
            ),
        ),
        output=run.output,
    )


def enter(run: StepRun) -> None:
    if not run.flow_run.symbol:
        raise StepFailure(ErrorCode.INVALID_STEP_INPUTS, "flow run scope.symbol is required")
    uri = artifact_uri(run.config, run.run_id, run.step.timeframe or "", run.step_id)
    run.report = build_report(run)
    data = msgspec.json.encode(run.report)
    run.budget.require("gcs write")
    run.log.info("gcs_write_started", gcsUri=uri, bytes=len(data))
    started = time.monotonic()
    try:
        created = run.ports.blobs.create(uri, data, "application/json")
    except StoreUnavailable as exc:
        run.log.error("gcs_write_finished", gcsUri=uri, status="error")
        raise StepFailure(ErrorCode.GCS_WRITE_FAILED, exc.message) from None
    run.gcs_uri = uri
    run.reused = not created
    run.log.info(
        "gcs_write_finished",
        gcsUri=uri,
        status="created" if created else "reused",
        bytes=len(data),
        created=created,
        durationMs=int((time.monotonic() - started) * 1000),
    )
    run.trigger("written")
