"""A whole backtest job on the emulators, and its overhead beyond the engine.

In process: the backtest worker built by the composition root on the production adapters (the
Firestore emulator, fake-gcs-server), one `created` event per job; the Wheel engine's own call
(`wheelsim.simulate`) is timed apart, so the overhead is everything else a job costs: reading the
job and the result, validation, the claim, the history read, canonical JSON and hash, the
create-only result write and the finalize. Then the same through functions-framework (POST of
an Eventarc CloudEvent to a function process), where the engine time is the process's own
`engine_finished.durationMs`. `uv run python -m bench.backtest_job`.
"""

from __future__ import annotations

import copy
import io
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.backtest_engine import price_path
from bench.common import summary
from devstack.cloudevents import firestore_created_event
from devstack.services import FakeGcs, FirestoreEmulator, FunctionServer, post_event

PROJECT = "demo-tda"
BUCKET = "history-bucket"
CREATED = "google.cloud.firestore.document.v1.created"
WARMUP = 2


def job(job_id: str, points: int, source: str) -> dict[str, Any]:
    prices, _ = price_path(points)
    config: dict[str, Any] = {
        "startingCapital": 100_000.0,
        "maxCycles": 1000,
        "strategyId": "wheel",
        "label": None,
        "symbol": "BENCH",
        "startDate": "2000-01-03",
        "endDate": "2099-12-31",
        "dataSource": source,
    }
    if source == "inline":
        config["pricePath"] = prices
    return {
        "jobId": job_id,
        "userId": "bench_user",
        "submittedAt": "2025-01-01T00:00:00Z",
        "status": "queued",
        "engineVersion": "1.0.0",
        "configUsed": config,
    }


def history_csv(points: int) -> bytes:
    import datetime

    prices, _ = price_path(points)
    day, rows = datetime.date(2000, 1, 3), ["date,close"]
    for price in prices:
        while day.weekday() >= 5:
            day += datetime.timedelta(days=1)
        rows.append(f"{day.isoformat()},{price:.2f}")
        day += datetime.timedelta(days=1)
    return ("\n".join(rows) + "\n").encode()


@contextmanager
def services() -> Iterator[tuple[FirestoreEmulator, FakeGcs, Path]]:
    with ExitStack() as stop, tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        firestore = stop.enter_context(FirestoreEmulator(project=PROJECT, log_dir=logs))
        gcs = stop.enter_context(FakeGcs(log_dir=logs))
        yield firestore, gcs, logs


class TimedEngine:
    """Wraps `wheelsim.simulate` where the simulate state calls it."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner
        self.spent = 0.0

    def __call__(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner(*args)
        finally:
            self.spent += time.perf_counter() - started


def in_process(db: Any, gcs: Any, env: dict[str, str], runs: int) -> None:
    import compose
    import states.backtest.simulate as simulate_state
    import wheelsim
    from adapters.firestore import FirestoreDocumentStore
    from adapters.gcs import GcsBlobStore
    from engine.cloudevent import Event

    engine = TimedEngine(wheelsim.simulate)
    setattr(simulate_state, "simulate", engine)  # noqa: B010  # bench-only instrumentation
    worker = compose.build(
        "backtest",
        env,
        stream=io.StringIO(),
        store=FirestoreDocumentStore(None, "(default)", given=db),
        history=GcsBlobStore(given=gcs),
    )
    for points, source in ((500, "inline"), (500, "history"), (5000, "inline")):
        totals, engines, overheads = [], [], []
        for i in range(runs + WARMUP):
            job_id = f"bench-{source}-{points}-{i}"
            db.collection("backtestJobs").document(job_id).set(job(job_id, points, source))
            engine.spent = 0.0
            started = time.perf_counter()
            outcome = worker.handle(Event(job_id, CREATED, f"documents/backtestJobs/{job_id}"))
            total = time.perf_counter() - started
            assert outcome.status == "ok", outcome
            if i >= WARMUP:
                totals.append(total * 1000)
                engines.append(engine.spent * 1000)
                overheads.append((total - engine.spent) * 1000)
        label = f"in process, {source} {points} points"
        print(summary(f"{label}: whole job", totals))
        print(summary("  of which the engine (wheelsim.simulate)", engines))
        print(summary("  overhead beyond the engine", overheads))


def through_the_function(db: Any, env: dict[str, str], logs: Path, runs: int) -> None:
    server = FunctionServer(env=env, target="on_backtest_job_written", log_dir=logs).start()
    try:
        totals, overheads = [], []
        for i in range(runs + WARMUP):
            job_id = f"bench-ff-{i}"
            document = job(job_id, 500, "inline")
            db.collection("backtestJobs").document(job_id).set(document)
            headers, body = firestore_created_event(
                project=PROJECT, collection="backtestJobs", doc_id=job_id, document=document
            )
            mark = server.mark()
            started = time.perf_counter()
            assert post_event(server.url, headers, body) == 200
            total = (time.perf_counter() - started) * 1000
            (finished,) = [
                e for e in server.log_json_lines(mark) if e.get("event") == "engine_finished"
            ]
            if i >= WARMUP:
                totals.append(total)
                overheads.append(total - float(finished["durationMs"]))
        print(summary("functions-framework, inline 500 points: POST to 200", totals))
        print(summary("  overhead beyond the engine (engine_finished.durationMs)", overheads))
    finally:
        server.stop()


def main(runs: int = 15) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore as gcf
    from google.cloud import storage  # type: ignore[attr-defined]

    with services() as (emulator, fake_gcs, logs):
        env = {
            "FIRESTORE_EMULATOR_HOST": emulator.host,
            "STORAGE_EMULATOR_HOST": fake_gcs.endpoint,
            "GCP_PROJECT": PROJECT,
            "HISTORY_BUCKET": BUCKET,
            "LOG_LEVEL": "INFO",
        }
        import os

        os.environ.update(env)
        db = gcf.Client(project=PROJECT)
        gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
        bucket = gcs.create_bucket(BUCKET)
        bucket.blob("daily/BENCH.csv").upload_from_string(history_csv(500))
        in_process(db, gcs, copy.deepcopy(env), runs)
        through_the_function(db, env, logs, runs)


if __name__ == "__main__":
    main()
