"""The backtest worker's entry functions (`on_backtest_job_written`, `sweep_stale_jobs`) through
functions-framework's own test client, and what a cold instance imports for them.

The runner is built on in-memory adapters and installed as the instance's, so the decorated
functions in `entry.py` reach it exactly as they reach the production one.
"""

from __future__ import annotations

import io
import json
from typing import Any

import functions_framework
import pytest

import compose
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from bench.backtest_cold_start import HEAVY
from bench.common import cold_probe
from devstack import REPO_ROOT
from devstack.cloudevents import firestore_created_event
from tests.backtest.test_lifecycle import (
    DOWN,
    ENVIRON,
    JOB_ID,
    documents,
    inline_job,
    over,
    running_job,
)
from tests.conftest import PROJECT
from tests.fakes import JobStore


def install(monkeypatch: pytest.MonkeyPatch, store: MemoryDocumentStore) -> None:
    runner = compose.build(
        "backtest", ENVIRON, stream=io.StringIO(), store=store, history=MemoryBlobStore()
    )
    monkeypatch.setitem(compose._runners, "backtest", runner)


def client(target: str, signature_type: str) -> Any:
    app = functions_framework.create_app(target, str(REPO_ROOT / "entry.py"), signature_type)
    return app.test_client()


def created(job: dict[str, Any] | None, doc_id: str = JOB_ID) -> tuple[dict[str, str], bytes]:
    return firestore_created_event(
        project=PROJECT, collection="backtestJobs", doc_id=doc_id, document=job
    )


def test_on_backtest_job_written_runs_the_job(monkeypatch):
    store = MemoryDocumentStore(documents(inline_job()))
    install(monkeypatch, store)
    headers, body = created(inline_job())

    response = client("on_backtest_job_written", "cloudevent").post("/", headers=headers, data=body)

    assert response.status_code == 200
    assert (store.document("backtestJobs", JOB_ID) or {})["status"] == "completed"
    assert store.document("backtestResults", JOB_ID) is not None


def test_every_outcome_returns_normally_even_a_stranded_finalize(monkeypatch):
    store = JobStore(documents(inline_job()), write_faults={"completed": DOWN})
    install(monkeypatch, store)
    headers, body = created(inline_job())

    response = client("on_backtest_job_written", "cloudevent").post("/", headers=headers, data=body)

    assert response.status_code == 200
    assert (store.document("backtestJobs", JOB_ID) or {})["status"] == "running"


def test_sweep_stale_jobs_answers_the_sweep_summary(monkeypatch):
    install(monkeypatch, MemoryDocumentStore(documents(running_job(**over()))))

    response = client("sweep_stale_jobs", "http").post("/")

    assert response.status_code == 200
    assert json.loads(response.data) == {"scanned": 1, "completed": 0, "failed": 1, "skipped": 0}


def cold_modules(headers: dict[str, str], body: bytes, **env: str) -> set[str]:
    """The HEAVY prefixes a fresh instance loaded handling this one event."""
    probe = cold_probe("on_backtest_job_written", (headers, body), env, HEAVY)
    return set(probe["loaded"])


@pytest.mark.parametrize(
    "attributes",
    [{"subject": "documents/backtestJobs/not.a.job"}, {"event_type": "example.other.v1"}],
    ids=["invalid_subject", "event_type_filtered"],
)
def test_an_ignored_event_on_a_cold_instance_imports_no_google_client(attributes):
    headers, body = firestore_created_event(
        project=PROJECT,
        collection="backtestJobs",
        doc_id=JOB_ID,
        document=inline_job(),
        **attributes,
    )
    assert cold_modules(headers, body) == set()


def test_a_noop_read_from_firestore_loads_only_the_firestore_client(firestore, firestore_emulator):
    """`already_final` needs the job read: Firestore's client, and nothing of the job's run."""
    firestore.collection("backtestJobs").document(JOB_ID).set(inline_job(status="completed"))
    headers, body = created(inline_job())
    loaded = cold_modules(headers, body, FIRESTORE_EMULATOR_HOST=firestore_emulator.host)
    assert "google.cloud.firestore" in loaded
    firestore_client = {"google.cloud.firestore", "google.api_core", "grpc"}
    assert not loaded & (set(HEAVY) - firestore_client)
