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

import tempfile
from pathlib import Path
from typing import Any

from bench.common import cold_probe, summary
from devstack.cloudevents import firestore_created_event
from devstack.services import FirestoreEmulator

PROJECT = "demo-tda"
# What a no-op must not import (tests/backtest/test_entry.py asserts it on these same prefixes).
HEAVY = (
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.api_core",
    "grpc",
    "transitions",
    "wheelsim",
    "states.backtest.table",
    "states.llm_client",
    "states.flow_run",
    "states.chart_export",
)

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


def event(doc_id: str, document: dict[str, Any] | None, **extra: Any) -> Any:
    return firestore_created_event(
        project=PROJECT, collection="backtestJobs", doc_id=doc_id, document=document, **extra
    )


def measure(label: str, runs: int, make: Any, env: dict[str, str]) -> None:
    imports, events, loaded = [], [], set()
    for i in range(runs):
        result = cold_probe("on_backtest_job_written", make(i), env, HEAVY)
        imports.append(result["import"])
        events.append(result["event"])
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
