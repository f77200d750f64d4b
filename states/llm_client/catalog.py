"""The LLM worker's event catalog (SPEC §13): stable names and the fields each must carry.

In the order the spec documents them, then the worker's own additions; the engine's shared
events (`cloud_event_received`, `claim_outcome_unknown`, ...) are added by `PROFILE`. The logger
flags any event outside the catalog or missing a field, so drift shows up in tests and in
Cloud Logging instead of silently breaking dashboards.
"""

from __future__ import annotations

from engine.log import ENGINE_CATALOG, LogProfile

EVENTS: dict[str, tuple[str, ...]] = {
    # --- SPEC §13, in its order
    "cloud_event_parsed": ("flowRunFound", "flowRunStatus", "flowRunSteps"),
    "ready_step_selected": ("stepId",),
    "claim_attempt": ("stepId", "claimed", "reason"),
    "prompt_fetch_started": ("promptId",),
    "prompt_fetch_finished": ("promptId", "found"),
    "context_resolve_started": ("ohlcvGcsUri", "chartsManifestGcsUri"),
    "context_resolve_finished": (),
    "gcs_read_started": ("kind", "gcsUri"),
    "gcs_read_finished": ("kind", "gcsUri", "bytes", "durationMs"),
    "context_json_validated": ("kind", "bytes"),
    "context_json_invalid": ("kind", "bytes"),
    "context_json_too_large": ("kind", "limitBytes"),
    "charts_manifest_parsed": ("items", "images"),
    "charts_manifest_no_images": ("chartsManifestGcsUri",),
    "chart_image_loaded": ("gcsUri", "bytes"),
    "chart_image_too_large": ("gcsUri", "limitBytes"),
    "user_input_built": ("textBytes", "images"),
    "llm_request_started": ("model", "attempt"),
    "llm_request_finished": ("attempt", "status", "durationMs"),
    "structured_output_invalid": ("reason", "llm", "diagnostics", "policy"),
    "structured_output_schema_invalid": ("schemaId", "reason"),
    "structured_output_repair_attempt_started": ("attempt",),
    "structured_output_repair_attempt_finished": ("attempt", "status"),
    "gcs_write_started": ("gcsUri", "bytes"),
    "gcs_write_finished": ("gcsUri", "status"),
    "step_completed": ("stepId", "gcsUri"),
    "step_failed": ("stepId", "error"),
    # --- the worker's additions
    "worker_configured": ("auth",),
    "flow_run_invalid": ("error", "errorWritten"),
    "stale_scan_run_failed": ("runId", "exceptionType"),
    "step_recovered_from_artifact": ("stepId", "gcsUri"),
    "finalize_skipped": ("stepId", "reason"),
    "step_finalize_failed": ("stepId", "reason"),
    "structured_output_schema_pinned": ("schemaId", "schemaSha256"),
    "structured_output_schema_sha_mismatch": ("schemaId", "storedSha256", "computedSha256"),
    "step_lease_expired": ("stepId", "claimStartedAt", "leaseSeconds"),
    "stale_scan_finished": ("runsScanned", "stale", "recovered", "expired", "probeFailed"),
}


PROFILE = LogProfile(
    service="worker_llm_client",
    catalog={**ENGINE_CATALOG, **EVENTS},
    context=("eventId", "runId", "stepId", "flowKey", "timeframe", "symbol"),
    required=("eventId", "runId"),
)
