"""Cold start of the backtest entry point (`on_backtest_job_written`): our share.

Fresh interpreter processes import functions-framework (the runtime's), then `entry.py`, and
hand one CloudEvent to the function: (a) an ignored event (a subject outside the collection),
decided before any read; (b) a job already final, a no-op that needs the job read (so the
Firestore client), on the emulator; (c) a queued job run to completion (the table, the machine,
the engine, the result write). Each prints its milliseconds and which heavy modules it loaded:
a no-op must not load the Google clients it does not use, the engine or other workers' modules.
`uv run python -m bench.backtest_cold_start`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import summary
from devstack.cloudevents import firestore_created_event
from devstack.services import REPO_ROOT, FirestoreEmulator

PROJECT = "demo-tda"
PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import functions_framework  # imported by the runtime before our module
t1 = time.perf_counter()
import entry
t2 = time.perf_counter()
from cloudevents.http import CloudEvent
event = CloudEvent(json.loads(sys.argv[1]), open(sys.argv[2], "rb").read())
t3 = time.perf_counter()
entry.on_backtest_job_written(event)
t4 = time.perf_counter()
heavy = ("google.cloud.firestore", "google.cloud.storage", "grpc", "transitions", "wheelsim",
         "states.backtest.table", "states.llm_client", "states.flow_run", "states.chart_export")
loaded = sorted(h for h in heavy if any(n == h or n.startswith(h + ".") for n in sys.modules))
print(json.dumps({"import": t2 - t1, "event": t4 - t3, "loaded": loaded}))
"""

JOB: dict[str, Any] = {
    "jobId": "cold-job",
    "userId": "bench_user",
    "status": "queued",
    "engineVersion": "1.0.0",
    "configUsed": {
        "startingCapital": 10000.0,
        "maxCycles": 10,
        "strategyId": "wheel",
        "label": None,
        "symbol": "TEST",
        "startDate": "2024-01-01",
        "endDate": "2024-12-31",
        "pricePath": [100.0 + (i % 7) for i in range(60)],
    },
}


def probe(event: tuple[dict[str, str], bytes], env: dict[str, str]) -> dict[str, Any]:
    headers, body = event
    attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    with tempfile.NamedTemporaryFile(suffix=".pb") as tmp:
        Path(tmp.name).write_bytes(body)
        out = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(attrs), tmp.name],
            cwd=REPO_ROOT,
            env={"PATH": "/usr/bin:/bin", "GCP_PROJECT": PROJECT, "LOG_LEVEL": "ERROR", **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def event(doc_id: str, document: dict[str, Any] | None, **extra: Any) -> Any:
    return firestore_created_event(
        project=PROJECT, collection="backtestJobs", doc_id=doc_id, document=document, **extra
    )


def measure(label: str, runs: int, make: Any, env: dict[str, str]) -> None:
    imports, events, loaded = [], [], set()
    for i in range(runs):
        result = probe(make(i), env)
        imports.append(result["import"] * 1000)
        events.append(result["event"] * 1000)
        loaded |= set(result["loaded"])
    print(summary(f"{label}: import entry.py", imports))
    print(summary(f"{label}: first event", events))
    print(f"  heavy modules loaded: {', '.join(sorted(loaded)) or 'none'}")


def main(runs: int = 7) -> None:
    ignored = event("x", JOB, subject="documents/other/x")
    measure("(a) ignored event", runs, lambda _: ignored, {})
    with (
        tempfile.TemporaryDirectory() as logs,
        FirestoreEmulator(project=PROJECT, log_dir=Path(logs)) as emulator,
    ):
        import os

        from google.cloud import firestore

        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        db = firestore.Client(project=PROJECT)
        env = {"FIRESTORE_EMULATOR_HOST": emulator.host}
        db.collection("backtestJobs").document("done").set({**JOB, "status": "completed"})
        measure("(b) already_final no-op", runs, lambda _: event("done", JOB), env)

        def fresh(i: int) -> Any:
            job_id = f"cold-{i}"
            db.collection("backtestJobs").document(job_id).set({**JOB, "jobId": job_id})
            return event(job_id, JOB)

        measure("(c) first job, completed", runs, fresh, env)


if __name__ == "__main__":
    main()
