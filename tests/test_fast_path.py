"""No Firestore read when the event's own document value shows nothing to do; a read whenever
it might have something to do."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.cloudevents import decode_body
from bench.noop import CountingStore
from devstack.cloudevents import decode_document_fields, firestore_update_event
from engine.cloudevent import Event
from tests import scenario
from tests.fakes import ExplodingLLM, worker

PROJECT = "demo-tda"


def event_for(doc: dict[str, Any] | None, run_id: str = scenario.RUN_ID) -> Event:
    _, body = firestore_update_event(project=PROJECT, run_id=run_id, document=doc)
    name, value = decode_body(body)
    return Event(
        "e",
        "google.cloud.firestore.document.v1.updated",
        f"documents/flow_runs/{run_id}",
        document=name,
        value=value,
    )


def test_body_decodes_to_the_same_document_the_client_would_read():
    doc = scenario.flow_run()
    _, body = firestore_update_event(project=PROJECT, run_id=scenario.RUN_ID, document=doc)
    name, value = decode_body(body)
    assert name is not None and value is not None
    assert name.endswith(f"/documents/flow_runs/{scenario.RUN_ID}")
    assert value["steps"] == decode_document_fields(body)["steps"] == doc["steps"]
    assert decode_body(b"\x00garbage") == (None, None)
    assert decode_body(None) == (None, None)


def mutated(**changes):
    doc = scenario.flow_run()
    for path, value in changes.items():
        node = doc
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (mutated(status="SUCCEEDED"), "run_not_running"),
        (mutated(**{f"steps__{scenario.STEP}__status": "SUCCEEDED"}), "no_ready_step"),
        (
            mutated(**{f"steps__{scenario.CHARTS_STEP}__status": "RUNNING"}),
            "dependency_not_succeeded",
        ),
    ],
)
def test_nothing_to_do_in_the_event_value_reads_nothing(firestore, gcs, doc, reason):
    scenario.seed(firestore, gcs, doc)
    CountingStore.reads = 0
    w, sink = worker(firestore, gcs, ExplodingLLM(), CountingStore)
    outcome = w.handle(event_for(doc))
    assert (outcome.status, outcome.reason) == ("noop", reason)
    assert CountingStore.reads == 0
    assert '"source":"event"' in sink.getvalue()


@pytest.mark.parametrize(
    "doc",
    [
        scenario.flow_run(),  # READY with dependencies met: the work itself
        mutated(**{f"steps__{scenario.STEP}__status": "RUNNING"}),  # may need recovery
        mutated(status="PAUSED"),  # invalid: the error must be recorded
        None,  # no value in the body
    ],
    ids=["ready", "running", "invalid", "no_value"],
)
def test_anything_that_might_need_work_reads_firestore(firestore, gcs, doc):
    scenario.seed(firestore, gcs, mutated(status="SUCCEEDED"))
    CountingStore.reads = 0
    w, _ = worker(firestore, gcs, ExplodingLLM(), CountingStore)
    w.handle(event_for(doc))
    assert CountingStore.reads == 1


def test_a_value_for_another_document_is_not_trusted(firestore, gcs):
    doc = mutated(status="SUCCEEDED")
    scenario.seed(firestore, gcs, scenario.flow_run())
    _, body = firestore_update_event(
        project=PROJECT, run_id="20251224-120000_BTCUSDT_other", document=doc
    )
    name, value = decode_body(body)
    event = Event(
        "e",
        "google.cloud.firestore.document.v1.updated",
        f"documents/flow_runs/{scenario.RUN_ID}",
        document=name,
        value=value,
    )
    CountingStore.reads = 0
    w, _ = worker(firestore, gcs, ExplodingLLM(), CountingStore)
    w.handle(event)
    assert CountingStore.reads == 1
