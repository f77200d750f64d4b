"""Cold start to the first handled no-op event.

(a) Our share, in fresh interpreter processes: import entry.py (functions-framework itself is
imported first, as the runtime does) and handle one no-op event whose own document shows
nothing to do. (b) The whole process: spawn functions-framework (gunicorn) serving entry.py
and time until the first no-op CloudEvent is answered 200.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.common import cold_probe, summary
from devstack.cloudevents import firestore_update_event
from devstack.example import load_example
from devstack.services import FunctionServer, post_event


def noop_event() -> tuple[dict[str, str], bytes]:
    doc = dict(load_example().flow_run, status="SUCCEEDED")
    return firestore_update_event(project="demo-tda", run_id=doc["runId"], document=doc)


def ours(runs: int) -> dict[str, list[float]]:
    event = noop_event()
    env = {"ARTIFACTS_BUCKET": "b", "GEMINI_API_KEY": "k"}
    result: dict[str, list[float]] = {"framework": [], "import": [], "noop": [], "ours": []}
    for _ in range(runs):
        probe = cold_probe("on_flow_run_updated", event, env)
        result["framework"].append(probe["framework"])
        result["import"].append(probe["import"])
        result["noop"].append(probe["event"])
        result["ours"].append(probe["import"] + probe["event"])
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
