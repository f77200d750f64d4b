"""Chaos for the backtest worker: crashes at every stage, duplicated concurrent deliveries over
several function processes, then the sweeper; and the exactly-once audit.

Real services throughout: the Firestore emulator, fake-gcs-server and three functions-framework
processes serving `on_backtest_job_written`, one of which SIGKILLs itself on entering each
lifecycle state once per armed job (`WORKER_TEST_CRASH_AT`; marker `<jobId>.unit.<state>`).
After the crashes, every job's `created` event is delivered again four times, concurrently, in
a seeded random order across all three processes; then the sweeper runs with a clock past the
lease. The audit: the engine ran at most once per job (its `engine_started` lines, counted over
every process's log), no result was ever written twice or changed, no failed job has a result,
every job ends terminal with the outcome its crash point implies, statuses only move forward,
and no uid reaches a log.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import compose
from adapters.firestore import FirestoreDocumentStore
from adapters.gcs import GcsBlobStore
from devstack.cloudevents import firestore_created_event
from devstack.services import FunctionServer
from engine.clock import utc_now
from tests.backtest.vectors import VECTOR_DIR, load_vector
from tests.chaos.harness import Crasher, Deliveries, figures, wait_for
from tests.conftest import PROJECT
from wheelsim import result_sha256

SEED = 20260202
BUCKET = "history-bucket"
JOBS, RESULTS = "backtestJobs", "backtestResults"
UID = "chaos_user_4711"
ENV = {"HISTORY_BUCKET": BUCKET}
RANK = {"queued": 0, "running": 1, "completed": 2, "failed": 2}
HOOKED = (
    "QUEUED_validate",
    "QUEUED_reject",
    "RUNNING_claim",
    "RUNNING_probe",
    "RUNNING_reuse",
    "RUNNING_prices",
    "RUNNING_simulate",
    "RUNNING_result",
    "RUNNING_finalize",
)
# Killed between the claim and the result: left running, and failed by the lease (§8.2).
KILLED_AFTER_CLAIM = frozenset(
    {"RUNNING_probe", "RUNNING_prices", "RUNNING_simulate", "RUNNING_result"}
)


@dataclass(frozen=True)
class ChaosJob:
    job_id: str
    doc: dict[str, Any]
    crash_at: tuple[str, ...]  # armed states, in the order its deliveries meet them
    expect: tuple[str, str | None]  # final (status, errorCode)

    def event(self) -> tuple[dict[str, str], bytes]:
        return firestore_created_event(
            project=PROJECT, collection=JOBS, doc_id=self.job_id, document=self.doc
        )


def template(name: str) -> dict[str, Any]:
    job: dict[str, Any] = copy.deepcopy(load_vector(VECTOR_DIR / f"{name}.json")["job"])
    job["userId"] = UID
    return job


HISTORY = load_vector(VECTOR_DIR / "bt08_history_source.json")["history"]


def make_jobs() -> list[ChaosJob]:
    inline, history = template("bt02_assigned_then_called_away"), template("bt08_history_source")
    invalid = template("e02_negative_starting_capital")

    def job(index: int, base: dict[str, Any], crash: tuple[str, ...], expect: Any) -> ChaosJob:
        job_id = f"chaos-{index:02d}"
        return ChaosJob(job_id, {**base, "jobId": job_id}, crash, expect)

    done, lease = ("completed", None), ("failed", "JOB_LEASE_EXPIRED")
    rejected = ("failed", "CONFIG_INVALID")
    return [
        job(0, inline, ("QUEUED_validate",), done),
        job(1, invalid, ("QUEUED_reject",), rejected),
        job(2, history, ("RUNNING_claim",), done),
        job(3, inline, ("RUNNING_probe",), lease),
        job(4, history, ("RUNNING_prices",), lease),
        job(5, inline, ("RUNNING_simulate",), lease),
        job(6, history, ("RUNNING_result",), lease),
        job(7, inline, ("RUNNING_finalize", "RUNNING_reuse"), done),  # then recovered
        *(job(8 + i, history if i % 2 else inline, (), done) for i in range(6)),
        job(14, invalid, (), rejected),
        job(15, {**inline, "status": "CloudBacktestStatus.queued"}, (), done),
    ]


@pytest.fixture(scope="module")
def healthy(function_server_factory) -> list[FunctionServer]:
    return [
        function_server_factory({**ENV, "INSTANCE": name}, target="on_backtest_job_written")
        for name in ("bt-chaos-a", "bt-chaos-b")
    ]


@pytest.fixture(scope="module")
def crasher(function_server_factory, tmp_path_factory) -> Crasher:
    once = tmp_path_factory.mktemp("bt-crash-once")
    env = {**ENV, "INSTANCE": "bt-chaos-crash", **Crasher.env(once, HOOKED)}
    return Crasher(function_server_factory(env, target="on_backtest_job_written"), once, HOOKED)


class Watch:
    """Every version of the jobs and results a Firestore listener reports."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.lock = threading.Lock()
        self.jobs: dict[str, list[dict[str, Any]]] = {}
        self.results: dict[str, list[str]] = {}
        self.modified_results: list[str] = []
        self.ready = threading.Event()
        self.watches: list[Any] = []

    def __enter__(self) -> Watch:
        self.watches = [
            self.db.collection(JOBS).on_snapshot(self._on_jobs),
            self.db.collection(RESULTS).on_snapshot(self._on_results),
        ]
        assert self.ready.wait(30), "no initial snapshot from the Firestore listener"
        return self

    def __exit__(self, *exc: object) -> None:
        for watch in self.watches:
            with contextlib.suppress(Exception):
                watch.unsubscribe()

    def _on_jobs(self, _docs: Any, changes: list[Any], _read_time: Any) -> None:
        with self.lock:
            for change in changes:
                if change.type.name != "REMOVED":
                    data = change.document.to_dict() or {}
                    version = {
                        "status": data.get("status"),
                        "startedAt": str(data.get("startedAt")),
                    }
                    self.jobs.setdefault(change.document.id, []).append(version)
        self.ready.set()

    def _on_results(self, _docs: Any, changes: list[Any], _read_time: Any) -> None:
        with self.lock:
            for change in changes:
                doc = change.document
                self.results.setdefault(doc.id, []).append(str(doc.update_time))
                if change.type.name == "MODIFIED":
                    self.modified_results.append(doc.id)

    def seen(self) -> dict[str, Any]:
        """The last status the listener reported for each job."""
        with self.lock:
            return {job_id: versions[-1]["status"] for job_id, versions in self.jobs.items()}

    def violations(self) -> list[str]:
        found = []
        with self.lock:
            for job_id, versions in self.jobs.items():
                claims = {v["startedAt"] for v in versions if v["status"] == "running"}
                if len(claims) > 1:
                    found.append(f"{job_id}: claimed {len(claims)} times")
                rank, terminal = -1, None
                for version in versions:
                    status = str(version["status"]).removeprefix("CloudBacktestStatus.")
                    if terminal is not None and version != terminal:
                        found.append(f"{job_id}: terminal job rewritten to {status}")
                    elif RANK.get(status, -1) < rank:
                        found.append(f"{job_id}: moved back to {status}")
                    rank = max(rank, RANK.get(status, -1))
                    if status in ("completed", "failed") and terminal is None:
                        terminal = version
            for result_id, times in self.results.items():
                if len(set(times)) > 1:
                    found.append(f"{result_id}: result written {len(set(times))} times")
            found += [f"{rid}: result modified" for rid in self.modified_results]
        return found


def stored(db: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {snap.id: snap.to_dict() or {} for snap in db.collection(collection).stream()}


def engine_runs(texts: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == "engine_started":
                    counts[str(entry.get("jobId"))] += 1
    return counts


def test_crashes_at_each_stage_duplicates_across_processes_then_the_sweeper(
    firestore, gcs, healthy, crasher, capsys
):
    started = time.monotonic()
    jobs = make_jobs()
    bucket = gcs.create_bucket(BUCKET)
    bucket.blob(HISTORY["objectName"]).upload_from_string(HISTORY["content"].encode())
    for job in jobs:
        crasher.arm(job.job_id, "unit", *job.crash_at)
    armed = crasher.markers()
    marks = [server.mark() for server in (crasher.server, *healthy)]
    deliveries = Deliveries()
    violations: list[str] = []

    with Watch(firestore) as watch:
        for job in jobs:
            firestore.collection(JOBS).document(job.job_id).set(job.doc)
        # 1. each armed job's first deliveries go to the crashing instance, which dies on
        #    entering the job's stage (gunicorn starts a new worker); a finalize crash is
        #    delivered again there (dying in reuse), then to a healthy instance.
        for job in jobs:
            for _ in job.crash_at:
                status = deliveries.post(crasher.server.url, job.event())
                if status is not None:
                    violations.append(f"{job.job_id}: the crashed delivery answered {status}")
            if "RUNNING_finalize" in job.crash_at:
                deliveries.post(healthy[0].url, job.event())
        # 2. at least once, duplicated, concurrent: every job four times over all instances
        urls = [crasher.server.url, healthy[0].url, healthy[1].url, healthy[0].url]
        storm = [(url, job.event()) for job in jobs for url in urls]
        answers = deliveries.storm(storm, seed=SEED, max_delay=0.5, workers=12)
        violations += [f"a storm delivery answered {a}" for a in answers if a != 200]

        def running() -> list[str]:
            docs = stored(firestore, JOBS)
            return sorted(
                j
                for j, d in docs.items()
                if d.get("status") != "completed" and d.get("status") != "failed"
            )

        expected_running = sorted(j.job_id for j in jobs if set(j.crash_at) & KILLED_AFTER_CLAIM)
        wait_for(lambda: running() == expected_running, 20, lambda: f"running: {running()}")
        # 3. the sweeper, with a clock past every lease; then everything again, and again
        sink = io.StringIO()
        lease = 900.0
        sweeper = compose.build(
            "backtest",
            ENV,
            stream=sink,
            now=lambda: utc_now() + timedelta(seconds=lease + 60),
            store=FirestoreDocumentStore(None, "(default)", given=firestore),
            history=GcsBlobStore(given=gcs),
        )
        first_sweep = sweeper.scan(lease)
        before = (stored(firestore, JOBS), stored(firestore, RESULTS))
        replay = deliveries.storm(storm, seed=SEED + 1, max_delay=0.2, workers=12)
        violations += [f"a replay delivery answered {a}" for a in replay if a != 200]
        second_sweep = sweeper.scan(lease)
        after = (stored(firestore, JOBS), stored(firestore, RESULTS))
        final = {job_id: doc.get("status") for job_id, doc in after[0].items()}
        wait_for(lambda: watch.seen() == final, 10, lambda: "the listener fell behind")
        violations += watch.violations()

    crashes = len(crasher.crashes(armed))
    logs = [
        server.log_text(mark)
        for server, mark in zip((crasher.server, *healthy), marks, strict=True)
    ]
    sigkills = len(crasher.kills(marks[0]))
    runs = engine_runs([*logs, sink.getvalue()])
    job_docs, results = after
    violations += [f"engine ran {n} times for {j}" for j, n in runs.items() if n > 1]
    if before != after:
        violations.append("the replay or the second sweep changed a terminal job or a result")
    for job in jobs:
        doc = job_docs[job.job_id]
        outcome = (doc.get("status"), doc.get("errorCode"))
        if outcome != job.expect:
            violations.append(f"{job.job_id} (crash at {job.crash_at}): ended {outcome}")
        result = results.get(job.job_id)
        if doc.get("status") == "failed" and result is not None:
            violations.append(f"{job.job_id}: failed with a result")
        if doc.get("status") == "completed":
            if result is None:
                violations.append(f"{job.job_id}: completed without a result")
            elif result["resultSha256"] != result_sha256(result["backtestResult"]) or (
                result["jobId"],
                result["userId"],
            ) != (job.job_id, UID):
                violations.append(f"{job.job_id}: its result is not its own or not intact")
        if doc.get("status") == "completed" and runs[job.job_id] != 1:
            violations.append(f"{job.job_id}: completed after {runs[job.job_id]} engine runs")
    violations += crasher.mismatch(armed, marks[0])
    for text in (*logs, sink.getvalue()):
        if UID in text:
            violations.append("the uid reached a log")
        if '"payloadRejected"' in text or '"uncatalogued"' in text:
            violations.append("a log line was rejected or uncatalogued")
    statuses = Counter(str(doc.get("status")) for doc in job_docs.values())
    lease_expired = sum(doc.get("errorCode") == "JOB_LEASE_EXPIRED" for doc in job_docs.values())
    recovered = sum('"job_recovered"' in text for text in logs)

    line = figures(
        "backtest_crash_each_stage",
        jobs=len(jobs),
        processes=1 + len(healthy),
        deliveries=deliveries.total,
        crashes=crashes,
        sigkills=sigkills,
        violations=len(violations),
        engine_runs=sum(runs.values()),
        max_engine_runs_per_job=max(runs.values(), default=0),
        results=len(results),
        completed=statuses["completed"],
        failed=statuses["failed"],
        lease_expired=lease_expired,
        recovered=recovered,
        job_versions=sum(len(v) for v in watch.jobs.values()),
        seconds=f"{time.monotonic() - started:.1f}",
    )
    with capsys.disabled():
        print(f"\n{line}", flush=True)
    assert not violations, "\n  ".join([f"{len(violations)} violation(s):", *violations])
    assert crashes == sigkills == sum(len(job.crash_at) for job in jobs)
    assert first_sweep == {"scanned": 4, "completed": 0, "failed": 4, "skipped": 0}
    assert second_sweep == {"scanned": 0, "completed": 0, "failed": 0, "skipped": 0}
