"""Claims whose outcome the client cannot see (COMMON.md §3), against the Firestore emulator.

The claim write may reach Firestore while the client sees an error. Only a re-read decides; an
outcome that stays unknown is never reported as "not claimed", since no redelivery would come.
"""

from __future__ import annotations

import json
from typing import Any

from engine.cloudevent import Event
from tests import scenario
from tests.fakes import AmbiguousWrites, FakeClock, GoodLLM, worker

EVENT = Event(
    "e1", "google.cloud.firestore.document.v1.updated", f"documents/flow_runs/{scenario.RUN_ID}"
)


def events(sink: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_a_landed_claim_whose_rereads_fail_is_unknown_not_unclaimed(firestore, gcs):
    scenario.seed(firestore, gcs)
    clock = FakeClock()
    store = AmbiguousWrites(firestore, clock, failing_reads=None)
    llm = GoodLLM()
    w, sink = worker(firestore, gcs, llm, store=store)

    outcome = w.handle(EVENT)

    assert (outcome.status, outcome.reason) == ("failed", "claim_outcome_unknown")
    logged = events(sink)
    [unknown] = [e for e in logged if e["event"] == "claim_outcome_unknown"]
    assert unknown["severity"] == "ERROR"
    step = scenario.step_of(firestore)
    # The claim is on the step; nothing more was written and no model was called.
    assert step["status"] == "RUNNING"
    assert step["outputs"]["execution"]["timing"]["startedAt"] == unknown["claimStartedAt"]
    assert llm.calls == 0
    assert store.erred_writes == 1
    assert store.failed_reads >= 2  # kept re-reading within the claim timeout
    assert clock.now - 1000.0 <= 10.0 + 0.5


def test_a_landed_claim_seen_on_a_later_reread_continues_the_work(firestore, gcs):
    scenario.seed(firestore, gcs)
    store = AmbiguousWrites(firestore, FakeClock(), failing_reads=1)
    llm = GoodLLM()
    w, _ = worker(firestore, gcs, llm, store=store)

    outcome = w.handle(EVENT)

    assert outcome.state == "SUCCEEDED"
    assert llm.calls == 1
    assert scenario.step_of(firestore)["status"] == "SUCCEEDED"


def test_claim_writes_proven_not_landed_fail_the_claim_without_writing(firestore, gcs):
    scenario.seed(firestore, gcs)
    store = AmbiguousWrites(firestore, FakeClock(), land=False, landing=None, failing_reads=0)
    llm = GoodLLM()
    w, sink = worker(firestore, gcs, llm, store=store)

    outcome = w.handle(EVENT)

    assert (outcome.status, outcome.reason) == ("failed", "FIRESTORE_CLAIM_FAILED")
    assert scenario.step_of(firestore)["status"] == "READY"
    assert llm.calls == 0
    assert store.erred_writes == 4  # every attempt, each re-read proving it had not landed
    assert not [e for e in events(sink) if e["event"] == "claim_outcome_unknown"]
