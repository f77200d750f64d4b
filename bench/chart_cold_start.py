"""Cold start of the CHART_EXPORT entry to its first handled no-op event.

In fresh interpreter processes: import entry.py (functions-framework first, as the runtime
does), then hand `on_chart_export_flow_run_updated` one no-op event whose own document shows
nothing to do. Reports the time and which heavy modules the no-op loaded: it must load neither
the LLM worker's modules nor the Google client libraries nor httpx2 (they come with real work).
`uv run python -m bench.chart_cold_start`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import summary
from devstack.cloudevents import firestore_update_event
from devstack.services import REPO_ROOT

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import functions_framework
t1 = time.perf_counter()
import entry
t2 = time.perf_counter()
from cloudevents.http import CloudEvent
event = CloudEvent(json.loads(sys.argv[2]), open(sys.argv[1], "rb").read())
t3 = time.perf_counter()
entry.on_chart_export_flow_run_updated(event)
t4 = time.perf_counter()
heavy = ("states.llm_client", "google.cloud.firestore", "google.cloud.storage",
         "google.api_core", "google.genai", "httpx2", "jsonschema", "adapters.gemini")
loaded = sorted({m for m in sys.modules for h in heavy if m == h or m.startswith(h + ".")})
print(json.dumps({"framework": t1 - t0, "import": t2 - t1, "noop": t4 - t3,
                  "heavy": sorted({".".join(m.split(".")[:3])
                                   for m in loaded})}))
"""

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


def probe() -> dict[str, Any]:
    """One fresh process: timings in seconds and the heavy packages the no-op loaded."""
    headers, body = noop_event()
    attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    with tempfile.NamedTemporaryFile(suffix=".pb") as tmp:
        Path(tmp.name).write_bytes(body)
        out = subprocess.run(
            [sys.executable, "-c", PROBE, tmp.name, json.dumps(attrs)],
            cwd=REPO_ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main(runs: int = 7) -> None:
    results = [probe() for _ in range(runs)]
    ours = [(r["import"] + r["noop"]) * 1000 for r in results]
    print(summary("chart cold start, ours (import entry + first no-op)", ours))
    print(summary("  of which import entry.py", [r["import"] * 1000 for r in results]))
    print(summary("  of which first no-op event", [r["noop"] * 1000 for r in results]))
    print(summary("  functions-framework import", [r["framework"] * 1000 for r in results]))
    print(f"  heavy packages loaded by the no-op: {results[-1]['heavy'] or 'none'}")


if __name__ == "__main__":
    main()
