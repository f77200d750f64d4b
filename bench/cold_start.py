"""Cold start to the first handled no-op event.

(a) Our share, in fresh interpreter processes: import entry.py (functions-framework itself is
imported first, as the runtime does) and handle one no-op event whose own document shows
nothing to do. (b) The whole process: spawn functions-framework (gunicorn) serving entry.py
and time until the first no-op CloudEvent is answered 200.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import summary
from devstack.cloudevents import firestore_update_event
from devstack.example import load_example
from devstack.services import REPO_ROOT, FunctionServer, post_event

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import functions_framework  # imported by the runtime before our module
t1 = time.perf_counter()
import entry
t2 = time.perf_counter()
from cloudevents.http import CloudEvent
body = open(sys.argv[1], "rb").read()
attrs = json.loads(sys.argv[2])
event = CloudEvent(attrs, body)
t3 = time.perf_counter()
entry.on_flow_run_updated(event)
t4 = time.perf_counter()
print(json.dumps({"framework": t1 - t0, "import": t2 - t1, "noop": t4 - t3}))
"""


def noop_event() -> tuple[dict[str, str], bytes]:
    doc = dict(load_example().flow_run, status="SUCCEEDED")
    return firestore_update_event(project="demo-tda", run_id=doc["runId"], document=doc)


def ours(runs: int) -> dict[str, list[float]]:
    headers, body = noop_event()
    attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    env = {
        "ARTIFACTS_BUCKET": "b",
        "GEMINI_API_KEY": "k",
        "GCP_PROJECT": "demo-tda",
        "LOG_LEVEL": "ERROR",
        "PATH": "/usr/bin:/bin",
    }
    result: dict[str, list[float]] = {"framework": [], "import": [], "noop": [], "ours": []}
    with tempfile.NamedTemporaryFile(suffix=".pb") as tmp:
        Path(tmp.name).write_bytes(body)
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", PROBE, tmp.name, json.dumps(attrs)],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            probe = json.loads(out.strip().splitlines()[-1])
            for key in ("framework", "import", "noop"):
                result[key].append(probe[key] * 1000)
            result["ours"].append((probe["import"] + probe["noop"]) * 1000)
    return result


def whole_process(runs: int) -> list[float]:
    headers, body = noop_event()
    env = {
        "ARTIFACTS_BUCKET": "b",
        "GEMINI_API_KEY": "k",
        "GCP_PROJECT": "demo-tda",
        "LOG_LEVEL": "ERROR",
    }
    times = []
    with tempfile.TemporaryDirectory() as logs:
        for _ in range(runs):
            started = time.perf_counter()
            server = FunctionServer(env=env, log_dir=Path(logs)).start()
            try:
                assert post_event(server.url, headers, body) == 200
                times.append((time.perf_counter() - started) * 1000)
            finally:
                server.stop()
    return times


def main(runs: int = 7) -> None:
    result = ours(runs)
    print(summary("cold start, ours (import entry + first no-op)", result["ours"]))
    print(summary("  of which import entry.py", result["import"]))
    print(summary("  of which first no-op event", result["noop"]))
    print(summary("  functions-framework import (runtime's, not ours)", result["framework"]))
    print(summary("cold start, whole process (spawn to first 200)", whole_process(5)))
    print(f"  (median framework share {statistics.median(result['framework']):.0f} ms)")


if __name__ == "__main__":
    main()
