"""Probing a RUNNING step that another invocation owns, when Cloud Storage fails (COMMON.md §4).

A failed probe leaves the step untouched, logs one error and ends that step's handling within
the call timeouts; a stale-step scan goes on with the next run. Before these rules the error
handler re-fired `fail` from a state with no `fail` edge and looped forever.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from devstack.cloudevents import firestore_update_event
from devstack.fault_proxy import Fault, FaultProxy
from devstack.services import FakeGcs
from engine.cloudevent import Event
from engine.runner import Outcome
from tests import scenario
from tests.conftest import PROJECT
from tests.fakes import ExplodingLLM, StorageDownOnProbe, worker

LEASE = 900.0
EVENT = Event(
    "e1", "google.cloud.firestore.document.v1.updated", f"documents/flow_runs/{scenario.RUN_ID}"
)


def finishes(call: Callable[[], Any], seconds: float = 30.0) -> Any:
    """The call's result, or a test failure if it does not return in time (a loop)."""
    box: dict[str, Any] = {}

    def target() -> None:
        box["result"] = call()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return box["result"]


def running_doc(started_at: Any = "now") -> dict[str, Any]:
    doc = scenario.flow_run()
    step = doc["steps"][scenario.STEP]
    step["status"] = "RUNNING"
    if started_at == "now":
        started_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    step["outputs"] = {"execution": {"timing": {"startedAt": started_at}}}
    return doc


def entries(sink: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_a_failed_probe_on_an_event_leaves_the_step_and_logs_one_error(firestore, gcs):
    scenario.seed(firestore, gcs, running_doc())
    ref = firestore.collection("flow_runs").document(scenario.RUN_ID)
    before = ref.get().update_time
    blobs = StorageDownOnProbe(gcs)
    w, sink = worker(firestore, gcs, ExplodingLLM(), blobs=blobs)

    outcome: Outcome = finishes(lambda: w.handle(EVENT))

    assert (outcome.status, outcome.reason) == ("failed", "probe_failed")
    assert ref.get().update_time == before
    assert blobs.probes == 1
    errors = [e for e in entries(sink) if e["severity"] == "ERROR"]
    assert [e["event"] for e in errors] == ["probe_failed"]
    assert errors[0]["stepId"] == scenario.STEP


@pytest.fixture
def proxied_gcs(fake_gcs: FakeGcs, gcs: Any) -> Iterator[FaultProxy]:
    with FaultProxy(fake_gcs.endpoint) as proxy:
        yield proxy


def test_a_403_while_probing_through_the_function_ends_the_invocation(
    firestore, gcs, proxied_gcs: FaultProxy, function_server_factory
):
    """Through functions-framework: the artifact lookup of the RUNNING step gets 403 (the
    runtime account lacks a permission); the invocation answers, writes nothing, logs once."""
    doc = running_doc()
    scenario.seed(firestore, gcs, doc)
    ref = firestore.collection("flow_runs").document(scenario.RUN_ID)
    before = ref.get().update_time
    server = function_server_factory(
        {"ARTIFACTS_BUCKET": scenario.BUCKET, "STORAGE_EMULATOR_HOST": proxied_gcs.endpoint}
    )
    fault = proxied_gcs.inject(Fault(status=403, method="GET", path=scenario.STEP))
    mark = server.mark()
    headers, body = firestore_update_event(project=PROJECT, run_id=scenario.RUN_ID, document=doc)

    response = requests.post(server.url, headers=headers, data=body, timeout=30)

    assert response.status_code < 500
    assert fault.hits == 1
    assert ref.get().update_time == before
    logged = server.log_json_lines(since=mark)
    assert [e["event"] for e in logged if e.get("severity") == "ERROR"] == ["probe_failed"]
    assert len(logged) < 20


def stale_run(db: Any, run_id: str, started_at: Any, execution: Any = None) -> None:
    doc = running_doc(started_at)
    doc["runId"] = run_id
    if execution is not None:
        doc["steps"][scenario.STEP]["outputs"]["execution"] = execution
    db.collection("flow_runs").document(run_id).set(doc)


def test_the_stale_scan_survives_odd_claims_and_failed_probes(firestore, gcs):
    """One bad document never stops the scan: a naive startedAt (taken as UTC), an execution
    that is not a map (no claim time: expired) and a run whose probe fails are each handled
    on their own."""
    scenario.seed(firestore, gcs, scenario.flow_run())
    old = datetime.now(UTC) - timedelta(seconds=LEASE + 60)
    naive = "20251224-120000_BTCUSDT_nv1"
    odd = "20251224-120000_BTCUSDT_od1"
    stale_run(firestore, naive, old.replace(tzinfo=None).isoformat())
    stale_run(firestore, odd, None, execution=["not", "a", "map"])
    w, _ = worker(firestore, gcs, ExplodingLLM())

    summary = finishes(lambda: w.scan(LEASE))

    assert summary == {
        "runsScanned": 3,
        "stale": 2,
        "recovered": 0,
        "expired": 2,
        "probeFailed": 0,
    }
    for run_id in (naive, odd):
        step = firestore.collection("flow_runs").document(run_id).get().to_dict()["steps"]
        assert step[scenario.STEP]["error"]["code"] == "STEP_LEASE_EXPIRED"

    probe_down = "20251224-120000_BTCUSDT_pd1"
    stale_run(firestore, probe_down, old.isoformat().replace("+00:00", "Z"))
    blobs = StorageDownOnProbe(gcs)
    w2, sink2 = worker(firestore, gcs, ExplodingLLM(), blobs=blobs)
    summary = finishes(lambda: w2.scan(LEASE))
    # The run status is the orchestrator's: all four runs are still RUNNING and scanned.
    assert summary == {
        "runsScanned": 4,
        "stale": 0,
        "recovered": 0,
        "expired": 0,
        "probeFailed": 1,
    }
    assert blobs.probes == 1
    step = firestore.collection("flow_runs").document(probe_down).get().to_dict()["steps"]
    assert step[scenario.STEP]["status"] == "RUNNING"
    assert [e["event"] for e in entries(sink2) if e["severity"] == "ERROR"] == ["probe_failed"]
