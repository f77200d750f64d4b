"""Cold start of the CHART_EXPORT entry to its first handled no-op event.

In fresh interpreter processes: import entry.py (functions-framework first, as the runtime
does), then hand `on_chart_export_flow_run_updated` one no-op event whose own document shows
nothing to do. Reports the time and which heavy modules the no-op loaded: it must load neither
the LLM worker's modules nor the Google client libraries nor httpx2 (they come with real work).
`uv run python -m bench.chart_cold_start`.
"""

from __future__ import annotations

import json

from bench.common import cold_probe, summary
from devstack import REPO_ROOT
from devstack.cloudevents import firestore_update_event

HEAVY = (
    "states.llm_client",
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.api_core",
    "google.genai",
    "httpx2",
    "jsonschema",
    "adapters.gemini",
)

ENV = {
    "ARTIFACTS_BUCKET": "b",
    "CHARTS_API_MODE": "real",
    "CHART_IMG_ACCOUNTS_JSON": '[{"id": "acc-1", "apiKey": "bench-only-key"}]',
    "GCP_PROJECT": "demo-tda",
    "LOG_LEVEL": "ERROR",
    "PATH": "/usr/bin:/bin",
}


def noop_event() -> tuple[dict[str, str], bytes]:
    doc = json.loads((REPO_ROOT / "examples" / "chart_export" / "flow_run.json").read_text())
    doc["status"] = "SUCCEEDED"  # the event's own document: nothing to do, nothing read
    return firestore_update_event(project="demo-tda", run_id=doc["runId"], document=doc)


def main(runs: int = 7) -> None:
    event = noop_event()
    results = [
        cold_probe("on_chart_export_flow_run_updated", event, ENV, HEAVY) for _ in range(runs)
    ]
    ours = [r["import"] + r["event"] for r in results]
    print(summary("chart cold start, ours (import entry + first no-op)", ours))
    print(summary("  of which import entry.py", [r["import"] for r in results]))
    print(summary("  of which first no-op event", [r["event"] for r in results]))
    print(summary("  functions-framework import", [r["framework"] for r in results]))
    loaded = sorted({m for r in results for m in r["loaded"]})
    print(f"  heavy packages loaded by the no-op: {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
