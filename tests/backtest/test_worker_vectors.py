"""Every contract vector of `contracts/backtest/test_vectors/` through the deployed shape.

The function runs under functions-framework (target `on_backtest_job_written`) against the
Firestore emulator and fake-gcs-server; each vector's job is created with admin credentials,
its history CSV uploaded, and one Eventarc `created` CloudEvent delivered. The outcome is
checked as `contracts/backtest/README.md` says (status, code, message prefix, timestamps, the
result under the §9.7 comparison and its hash), and the ordered Firestore writes (from the
`WORKER_WRITE_JOURNAL` journal, timestamps normalized) and the log's event names are
snapshotted per vector.

Long price paths are snapshotted as a digest (count, first and last values, SHA-256 of their
canonical JSON) rather than point by point: the vector file already pins every number, and the
snapshot's job is the shape and order of what is written, which a 500-point list would bury.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.cloudevents import firestore_created_event
from devstack.services import FunctionServer, post_event
from tests import scenario
from tests.backtest.vectors import differences, load_vector, result_validator, vector_paths
from tests.conftest import PROJECT
from wheelsim import canonical_json, result_sha256

BUCKET = "history-bucket"
VECTORS = vector_paths("")
LONG = 40  # lists longer than this are snapshotted as a digest
UNSTABLE_EVENTS = {"worker_configured"}


@pytest.fixture(scope="module")
def server(function_server_factory, journal: scenario.Journal) -> FunctionServer:
    env = {"HISTORY_BUCKET": BUCKET, "WORKER_WRITE_JOURNAL": str(journal.path)}
    started: FunctionServer = function_server_factory(env, target="on_backtest_job_written")
    return started


def test_every_vector_is_collected():
    names = [path.stem.split("_")[0] for path in VECTORS]
    assert names == [f"bt0{i}" for i in range(1, 10)] + [f"e{i:02d}" for i in range(1, 12)]


def digest(values: list[Any]) -> dict[str, Any]:
    return {
        "points": len(values),
        "first": values[0],
        "last": values[-1],
        "sha256": hashlib.sha256(canonical_json(values)).hexdigest(),
    }


def summarized(value: Any) -> Any:
    """Long lists replaced by their digest, at any depth."""
    if isinstance(value, dict):
        return {key: summarized(item) for key, item in value.items()}
    if isinstance(value, list):
        if len(value) > LONG:
            return digest(value)
        return [summarized(item) for item in value]
    return value


def seed(db: Any, gcs: Any, vector: dict[str, Any]) -> None:
    bucket = gcs.bucket(BUCKET)
    if not bucket.exists():
        bucket = gcs.create_bucket(BUCKET)
    if vector["history"] is not None:
        blob = bucket.blob(vector["history"]["objectName"])
        blob.upload_from_string(vector["history"]["content"].encode(), content_type="text/csv")
    db.collection("backtestJobs").document(vector["jobId"]).set(vector["job"])


def check_job(job: dict[str, Any], expected: dict[str, Any]) -> None:
    assert job.get("status") == expected["status"]
    assert job.get("errorCode") == expected["errorCode"]
    prefix = expected["errorMessagePrefix"]
    if prefix is None:
        assert job.get("errorMessage") is None
    else:
        message = job["errorMessage"]
        assert message.startswith(prefix), message
        assert len(message) <= 500 and len(message.encode()) <= 512
    for field in ("startedAt", "completedAt", "leaseExpiresAt"):
        if expected[field] == "set":
            assert isinstance(job.get(field), datetime), field
        else:
            assert job.get(field) is None, field


def check_result(stored: dict[str, Any] | None, expected: dict[str, Any] | None) -> None:
    if expected is None:
        assert stored is None
        return
    assert stored is not None
    for key in ("jobId", "userId", "engineVersion"):
        assert stored[key] == expected[key], key
    assert isinstance(stored["createdAt"], datetime)
    result = stored["backtestResult"]
    assert differences(expected["backtestResult"], result) == []
    assert stored["resultSha256"] == result_sha256(result)
    if canonical_json(result) == canonical_json(expected["backtestResult"]):
        assert stored["resultSha256"] == expected["resultSha256"]
    assert list(result_validator().iter_errors(result)) == []


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector(path: Path, firestore, gcs, server: FunctionServer, journal, snapshot):
    vector = load_vector(path)
    job_id = vector["jobId"]
    seed(firestore, gcs, vector)
    mark, log_mark = journal.mark(), server.mark()
    headers, body = firestore_created_event(
        project=PROJECT, collection="backtestJobs", doc_id=job_id, document=vector["job"]
    )

    assert post_event(server.url, headers, body) == 200

    job = firestore.collection("backtestJobs").document(job_id).get().to_dict()
    result = firestore.collection("backtestResults").document(job_id).get()
    check_job(job, vector["expected"]["job"])
    check_result(result.to_dict() if result.exists else None, vector["expected"]["result"])
    entries = server.log_json_lines(since=log_mark, stream="both")
    for entry in entries:
        flags = {"uncatalogued", "missingFields", "payloadRejected"} & set(entry)
        assert not flags, f"{entry.get('event')}: {flags}"
    text = server.log_text(since=log_mark)
    user_id = vector["job"].get("userId")
    assert not (isinstance(user_id, str) and user_id in text), "the uid reached the logs"
    assert '"pricePath":' not in text and '"equityCurve":' not in text  # never a key
    events = [e["event"] for e in entries if e.get("event") not in UNSTABLE_EVENTS]
    assert events.count("engine_started") == (1 if vector["expected"]["result"] else 0)
    recorded = {
        "writes": summarized(scenario.normalized(journal.since(mark))),
        "events": events,
    }
    assert recorded == snapshot


def test_a_second_delivery_changes_nothing(firestore, gcs, server: FunctionServer, journal):
    """At-least-once delivery: the same `created` event again is a no-op (`already_final`)."""
    vector = load_vector(VECTORS[0])
    seed(firestore, gcs, vector)
    headers, body = firestore_created_event(
        project=PROJECT, collection="backtestJobs", doc_id=vector["jobId"], document=vector["job"]
    )
    assert post_event(server.url, headers, body) == 200
    mark, log_mark = journal.mark(), server.mark()
    assert post_event(server.url, headers, body) == 200
    assert journal.since(mark) == []
    noops = [
        e.get("reason")
        for e in server.log_json_lines(since=log_mark)
        if e.get("event") == "cloud_event_noop"
    ]
    assert noops == ["already_final"]


def test_the_sweeper_on_the_emulator(firestore, gcs, function_server_factory):
    """`sweep_stale_jobs` as deployed: HTTP, reading running jobs with one equality filter."""
    started = datetime.now(UTC) - timedelta(hours=2)
    vector = load_vector(VECTORS[0])
    stale = {**vector["job"], "status": "running", "startedAt": started}
    live = {**stale, "leaseExpiresAt": datetime.now(UTC) + timedelta(minutes=10)}
    firestore.collection("backtestJobs").document("stale-job").set({**stale, "jobId": "stale-job"})
    firestore.collection("backtestJobs").document("live-job").set({**live, "jobId": "live-job"})
    firestore.collection("backtestJobs").document("done-job").set(
        {**vector["job"], "jobId": "done-job", "status": "completed"}
    )
    sweeper = function_server_factory(
        {"HISTORY_BUCKET": BUCKET}, target="sweep_stale_jobs", signature_type="http"
    )
    response = requests.post(sweeper.url, timeout=60)
    assert response.status_code == 200
    assert response.json() == {"scanned": 2, "completed": 0, "failed": 1, "skipped": 1}
    doc = firestore.collection("backtestJobs").document("stale-job").get().to_dict()
    assert (doc["status"], doc["errorCode"]) == ("failed", "JOB_LEASE_EXPIRED")
    assert firestore.collection("backtestJobs").document("live-job").get().get("status") == (
        "running"
    )
