"""The CHART_EXPORT worker's event catalog (CHART_EXPORT §15) and its log profile.

Events in the order the spec lists them, then the worker's own additions; the engine's shared
events are added by `PROFILE`. The logger flags an event outside the catalog or missing a field,
so drift shows in the tests. Beyond SPEC §13's forbidden keys, §15 forbids the names under which
a key or a raw answer could travel (`headers`, `responseBody`, ...); the value gate itself is fed
with every configured account key when the worker is built (`ChartConfig.secrets`).
"""

from __future__ import annotations

from engine.log import ENGINE_CATALOG, FORBIDDEN_KEYS, LogProfile, normalized_key

EVENTS: dict[str, tuple[str, ...]] = {
    # --- shared with the LLM worker (SPEC §13)
    "cloud_event_parsed": ("flowRunFound", "flowRunStatus", "flowRunSteps"),
    "ready_step_selected": ("stepId",),
    "claim_attempt": ("stepId", "claimed", "reason"),
    # --- CHART_EXPORT §15, in its order
    "step_inputs_invalid": ("stepId", "field"),
    "chart_template_loaded": ("chartTemplateId", "cached"),
    "chart_template_not_found": ("chartTemplateId",),
    "chart_template_invalid": ("chartTemplateId", "reason"),
    "chart_request_built": ("chartTemplateId", "chartImgSymbol", "interval", "studies"),
    "chart_png_reused": ("chartTemplateId", "gcsUri"),
    "chart_img_account_reserved": ("accountId", "usageToday", "dailyLimit"),
    "chart_img_reservation_conflict": ("accountId",),
    "chart_img_account_exhausted": ("accountId", "source"),
    "chart_img_accounts_all_exhausted": ("accountIds", "error"),
    "chart_api_attempt_started": ("chartTemplateId", "attempt", "accountId", "mode"),
    "chart_api_attempt_finished": (
        "chartTemplateId",
        "httpStatus",
        "kind",
        "durationMs",
        "bytes",
        "retryAfterSeconds",
    ),
    "chart_api_backoff": ("chartTemplateId", "delaySeconds", "reason"),
    "chart_api_mock_missing": ("chartTemplateId", "stem"),
    "chart_api_fixture_recorded": ("fixture",),
    "chart_request_finished": ("chartTemplateId", "outcome", "errorCode", "attempts"),
    "gcs_write_started": ("kind", "gcsUri"),
    "gcs_write_finished": ("kind", "gcsUri", "reused"),
    "manifest_written": ("gcsUri", "items", "failures"),
    "manifest_adopted": ("gcsUri", "source"),
    "step_completed": ("stepId", "gcsUri"),
    "step_failed": ("stepId", "error"),
    "step_lease_expired": ("stepId", "claimStartedAt", "leaseSeconds"),
    "stale_scan_finished": ("runsScanned", "stale", "recovered", "expired", "probeFailed"),
    # --- the worker's additions
    "worker_configured": ("mode", "plan", "accounts"),
    "flow_run_invalid": ("error", "errorWritten"),
    "stale_scan_run_failed": ("runId", "exceptionType"),
    "finalize_skipped": ("stepId", "reason"),
    "step_finalize_failed": ("stepId", "reason"),
    "chart_template_read_failed": ("chartTemplateId", "exceptionType"),
    "chart_png_lookup_failed": ("chartTemplateId", "exceptionType"),
    "chart_img_account_problem": ("accountId", "httpStatus"),
    "chart_img_exhaustion_not_recorded": ("accountId", "reason"),
    "chart_img_reservation_failed": ("accountId", "reason"),
    "manifest_probe_failed": ("gcsUri", "exceptionType"),
    "manifest_invalid": ("gcsUri", "reason"),
}

# CHART_EXPORT §15: names a key or a raw answer could travel under, compared like the engine's.
CHART_FORBIDDEN = frozenset(
    normalized_key(name)
    for name in (
        "x-api-key",
        "xApiKey",
        "apiKeys",
        "headers",
        "requestHeaders",
        "accountsJson",
        "responseBody",
    )
)

PROFILE = LogProfile(
    service="worker_chart_export",
    catalog={**ENGINE_CATALOG, **EVENTS},
    forbidden=FORBIDDEN_KEYS | CHART_FORBIDDEN,
    context=("eventId", "runId", "stepId", "flowKey", "timeframe", "symbol"),
    required=("eventId", "runId"),
)
