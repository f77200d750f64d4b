"""Adapters against the real emulators, and faults injected into an in-process worker.

Claims and finalizes are only ever tested against the Firestore emulator, which enforces the
`update_time` preconditions the worker relies on.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage  # type: ignore[attr-defined]

from adapters.firestore import FirestoreDocumentStore, FirestoreRegistry
from adapters.gcs import GcsBlobStore
from adapters.registries import PromptSchemaRegistry
from engine.cloudevent import Event
from engine.errors import DocumentInvalid
from engine.gates import status_gate
from engine.log import EventLogger
from engine.ports import BlobTooLarge, BlobUndecodable, GuardedWrite
from engine.runner import Stranded
from states.flow_run.source import FlowRunSteps
from states.llm_client.catalog import PROFILE
from tests import scenario
from tests.fakes import ExplodingLLM, FinalizeDown, FinalizeExplodes, GoodLLM, worker

STEP = scenario.STEP


def store(db, journal: list[dict[str, Any]] | None = None) -> FirestoreDocumentStore:
    return FirestoreDocumentStore(
        None,
        "(default)",
        given=db,
        journal=journal.append if journal is not None else None,
        sleep=lambda _s: None,
    )


def update_step(
    s: FirestoreDocumentStore, expect: str, fields: dict[str, Any], timeout: float = 10.0
) -> GuardedWrite:
    """A status-gated write of step fields, as the claim and the finalize make them."""
    return s.update(
        "flow_runs",
        scenario.RUN_ID,
        {("steps", STEP, *name.split(".")): value for name, value in fields.items()},
        status_gate(("steps", STEP, "status"), frozenset({expect})),
        timeout,
    )


def seed_step(db, status: str) -> Any:
    doc = scenario.flow_run()
    doc["steps"][STEP]["status"] = status
    ref = db.collection("flow_runs").document(scenario.RUN_ID)
    ref.set(doc)
    return ref


def test_gate_mismatch_writes_nothing_and_reports_the_status(firestore):
    ref = seed_step(firestore, "SUCCEEDED")
    before = ref.get().update_time
    journal: list[dict[str, Any]] = []
    result = update_step(store(firestore, journal), "RUNNING", {"status": "FAILED"})
    assert (result.committed, result.observed) == (False, "SUCCEEDED")
    assert ref.get().update_time == before
    assert journal == []


def test_a_lost_precondition_race_is_retried_on_a_fresh_read(firestore, monkeypatch):
    ref = seed_step(firestore, "READY")
    s = store(firestore, [])
    original = s._read
    reads = []

    def racing_read(collection, doc_id, timeout=10.0):
        snapshot = original(collection, doc_id, timeout)
        reads.append(snapshot.update_time)
        if len(reads) == 1:  # someone else writes between our read and our write
            ref.update({"progress.currentStepId": "other"})
        return snapshot

    monkeypatch.setattr(s, "_read", racing_read)
    result = update_step(s, "READY", {"status": "RUNNING"})
    assert result.committed
    assert len(reads) == 2
    assert ref.get().to_dict()["steps"][STEP]["status"] == "RUNNING"


def test_the_gate_is_rechecked_after_a_lost_race(firestore, monkeypatch):
    ref = seed_step(firestore, "READY")
    s = store(firestore, [])
    original = s._read
    calls = []

    def claimed_by_twin(collection, doc_id, timeout=10.0):
        snapshot = original(collection, doc_id, timeout)
        calls.append(1)
        if len(calls) == 1:
            ref.update({f"steps.{STEP}.status": "RUNNING"})
        return snapshot

    monkeypatch.setattr(s, "_read", claimed_by_twin)
    result = update_step(s, "READY", {"status": "RUNNING", "x": 1})
    assert (result.committed, result.observed) == (False, "RUNNING")
    assert "x" not in ref.get().to_dict()["steps"][STEP]


def test_every_attempt_lost_is_a_conflict(firestore, monkeypatch):
    ref = seed_step(firestore, "READY")
    s = store(firestore, [])
    original = s._read
    counter = iter(range(100))

    def always_raced(collection, doc_id, timeout=10.0):
        snapshot = original(collection, doc_id, timeout)
        ref.update({"progress.tick": next(counter)})
        return snapshot

    monkeypatch.setattr(s, "_read", always_raced)
    result = update_step(s, "READY", {"status": "RUNNING"})
    assert result.conflict
    assert ref.get().to_dict()["steps"][STEP]["status"] == "READY"


@pytest.mark.parametrize(
    "after_landing",
    [
        gexc.DeadlineExceeded("reply lost"),
        # the client retried a commit that had landed: the retry fails the precondition
        gexc.FailedPrecondition("retried commit saw a newer update_time"),
    ],
    ids=["reply_lost", "retry_lost_the_precondition"],
)
def test_a_write_that_landed_before_an_error_counts_as_committed(
    firestore, monkeypatch, after_landing
):
    """Our patch is in the document though the call failed: the re-read finds it (the claim's
    startedAt makes it unique), so the claim is ours and journalled once."""
    seed_step(firestore, "READY")
    journal: list[dict[str, Any]] = []
    s = store(firestore, journal)
    real_ref = s._ref

    class LandsThenRaises:
        def __init__(self, ref):
            self._ref = ref

        def get(self, **kw):
            return self._ref.get(**kw)

        def update(self, *args, **kw):
            self._ref.update(*args, **kw)
            raise after_landing

    monkeypatch.setattr(s, "_ref", lambda coll, doc_id: LandsThenRaises(real_ref(coll, doc_id)))
    result = update_step(
        s,
        "READY",
        {"status": "RUNNING", "outputs.execution.timing.startedAt": "2026-01-01T00:00:00.000001Z"},
    )
    assert result.committed
    assert len(journal) == 1


def test_run_error_is_written_once(firestore):
    seed_step(firestore, "READY")
    journal: list[dict[str, Any]] = []
    source = FlowRunSteps("LLM_REPORT", "flow_runs", store(firestore, journal))
    log = EventLogger(PROFILE, env="test", stream=io.StringIO())
    problem = DocumentInvalid("m")
    assert source.invalid(scenario.RUN_ID, problem, log) == "FLOW_RUN_INVALID"
    assert source.invalid(scenario.RUN_ID, problem, log) == "FLOW_RUN_INVALID"
    # our own write's event finds the same error: it is not written again (no loop)
    assert journal == [
        {
            "doc": f"flow_runs/{scenario.RUN_ID}",
            "fields": {"error": {"code": "FLOW_RUN_INVALID", "message": "m"}},
        }
    ]


def test_registry_caches_found_documents_only(firestore):
    registry = PromptSchemaRegistry(
        FirestoreRegistry(None, "(default)", given=firestore), "llm_prompts", "llm_schemas"
    )
    assert registry.prompt("p1") is None
    firestore.collection("llm_prompts").document("p1").set({"a": 1})
    assert registry.prompt("p1") == {"a": 1}
    firestore.collection("llm_prompts").document("p1").set({"a": 2})
    assert registry.prompt("p1") == {"a": 1}  # immutable by contract: served from the cache


def test_bounded_read_fetches_at_most_limit_plus_one_byte(gcs, monkeypatch):
    gcs.create_bucket("bkt-test")
    gcs.bucket("bkt-test").blob("big.json").upload_from_string(b"x" * 1_000_000)
    fetched: list[int] = []
    original = storage.Blob.download_as_bytes

    def spy(self, *args, **kwargs):
        data = original(self, *args, **kwargs)
        fetched.append(len(data))
        return data

    monkeypatch.setattr(storage.Blob, "download_as_bytes", spy)
    blobs = GcsBlobStore(given=gcs)
    with pytest.raises(BlobTooLarge):
        blobs.read("gs://bkt-test/big.json", 65536)
    assert fetched == [65537]
    gcs.bucket("bkt-test").blob("small.json").upload_from_string(b"{}")
    assert blobs.read("gs://bkt-test/small.json", 65536) == b"{}"


def test_create_only_write_reuses_an_existing_object(gcs):
    gcs.create_bucket("bkt-test")
    blobs = GcsBlobStore(given=gcs)
    assert blobs.create("gs://bkt-test/r.json", b"first", "application/json") is True
    assert blobs.create("gs://bkt-test/r.json", b"second", "application/json") is False
    assert gcs.bucket("bkt-test").blob("r.json").download_as_bytes() == b"first"


# --- faults injected into an in-process worker (real Firestore emulator and fake-gcs) ---------


EVENT = Event(
    "e1", "google.cloud.firestore.document.v1.updated", f"documents/flow_runs/{scenario.RUN_ID}"
)


def test_an_unanticipated_exception_fails_the_step_with_a_sanitized_message(firestore, gcs):
    scenario.seed(firestore, gcs)
    w, sink = worker(firestore, gcs, ExplodingLLM())
    outcome = w.handle(EVENT)
    step = scenario.step_of(firestore)
    assert (outcome.state, step["status"]) == ("FAILED", "FAILED")
    assert step["error"] == {
        "code": "WORKER_INTERNAL_ERROR",
        "message": "unexpected RuntimeError in worker",
    }
    assert "secret-looking" not in sink.getvalue()


def test_a_finalize_that_cannot_be_written_strands_the_step_and_says_so(firestore, gcs):
    scenario.seed(firestore, gcs)
    w, sink = worker(firestore, gcs, GoodLLM(), FinalizeDown)
    with pytest.raises(Stranded):
        w.handle(EVENT)
    assert scenario.step_of(firestore)["status"] == "RUNNING"
    assert scenario.ARTIFACT_URI in scenario.objects(gcs)
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    # The Firestore fault itself is what stranded the step, not a bug in our code.
    [failed] = [e for e in lines if e["event"] == "step_finalize_failed"]
    assert failed["reason"] == "firestore_error"
    assert not [e for e in lines if e["event"] == "worker_exception"]
    finished = lines[-1]
    assert (finished["event"], finished["severity"], finished["stepState"]) == (
        "cloud_event_finished",
        "ERROR",
        "STRANDED",
    )
    # the next delivery adopts the artifact: split-brain recovery
    w2, _ = worker(firestore, gcs, ExplodingLLM())
    assert w2.handle(EVENT).state == "SUCCEEDED"
    assert scenario.step_of(firestore)["outputs"]["execution"]["reused"] is True


def test_writes_after_a_load_skip_the_read_while_nothing_changed(firestore, monkeypatch):
    ref = seed_step(firestore, "READY")
    s = store(firestore, [])
    reads = []
    original = s._read

    def counting_read(collection, doc_id, timeout=10.0):
        reads.append(1)
        return original(collection, doc_id, timeout)

    monkeypatch.setattr(s, "_read", counting_read)
    assert s.get("flow_runs", scenario.RUN_ID) is not None
    assert update_step(s, "READY", {"status": "RUNNING"}).committed
    assert update_step(s, "RUNNING", {"status": "SUCCEEDED"}).committed
    assert len(reads) == 1  # the load only: each write reused the snapshot the previous made
    assert ref.get().to_dict()["steps"][STEP]["status"] == "SUCCEEDED"


def test_a_remembered_snapshot_gone_stale_falls_back_to_a_read(firestore, monkeypatch):
    ref = seed_step(firestore, "READY")
    s = store(firestore, [])
    s.get("flow_runs", scenario.RUN_ID)
    ref.update({"progress.currentStepId": "other"})  # someone wrote after our load
    assert update_step(s, "READY", {"status": "RUNNING"}).committed
    ref.update({f"steps.{STEP}.status": "FAILED"})  # and now the step is final elsewhere
    result = update_step(s, "RUNNING", {"status": "SUCCEEDED"})
    assert (result.committed, result.observed) == (False, "FAILED")
    assert ref.get().to_dict()["steps"][STEP]["status"] == "FAILED"


def test_an_unexpected_finalize_exception_strands_the_step_and_is_logged(firestore, gcs):
    scenario.seed(firestore, gcs)
    w, sink = worker(firestore, gcs, GoodLLM(), FinalizeExplodes)
    with pytest.raises(Stranded):
        w.handle(EVENT)
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    [logged] = [e for e in lines if e["event"] == "worker_exception"]
    assert (logged["state"], logged["exceptionType"]) == ("RUNNING_finalize", "RuntimeError")
    assert scenario.step_of(firestore)["status"] == "RUNNING"


def test_a_gzip_encoded_object_is_decoded_within_the_limit_and_never_beyond(gcs, monkeypatch):
    """Cloud Storage would decompress it on the way and ignore the range; the adapter reads the
    stored bytes (at most limit + 1) and stops decoding one byte past the limit."""
    gcs.create_bucket("bkt-gz")
    small = json.dumps({"candles": [[1, 2, 3]]}).encode()
    huge = json.dumps({"pad": "x" * 5_000_000}).encode()
    for name, data in (("small.json", small), ("huge.json", huge)):
        blob = gcs.bucket("bkt-gz").blob(name)
        blob.content_encoding = "gzip"
        blob.upload_from_string(gzip.compress(data), content_type="application/json")
    fetched: list[int] = []
    original = storage.Blob.download_as_bytes

    def spy(self, *args, **kwargs):
        assert kwargs.get("raw_download") is True
        data = original(self, *args, **kwargs)
        fetched.append(len(data))
        return data

    monkeypatch.setattr(storage.Blob, "download_as_bytes", spy)
    blobs = GcsBlobStore(given=gcs)
    assert blobs.read("gs://bkt-gz/small.json", 65536) == small
    with pytest.raises(BlobTooLarge):
        blobs.read("gs://bkt-gz/huge.json", 65536)
    assert max(fetched) <= 65537
    corrupt = gcs.bucket("bkt-gz").blob("corrupt.json")
    corrupt.content_encoding = "gzip"
    corrupt.upload_from_string(b"\x1f\x8b\x08\x00not gzip at all", content_type="application/json")
    with pytest.raises(BlobUndecodable):
        blobs.read("gs://bkt-gz/corrupt.json", 65536)
