"""No-op handling: latency per event and Firestore reads per event (in-process, emulator)."""

from __future__ import annotations

import time
from typing import ClassVar

from adapters.cloudevents import decode_body
from adapters.firestore import FirestoreDocumentStore
from bench.common import in_process_worker, stack, summary
from devstack.cloudevents import firestore_update_event
from engine.cloudevent import Event
from engine.ports import Snapshot


class CountingStore(FirestoreDocumentStore):
    """Counts document reads, to show which events are decided without reading Firestore
    (here and in tests/test_fast_path.py)."""

    reads: ClassVar[int] = 0

    def get(self, collection: str, doc_id: str) -> Snapshot | None:
        type(self).reads += 1
        return super().get(collection, doc_id)


def main(events: int = 300) -> None:
    with stack() as services:
        finished = None
        db, gcs, example = services.reset_and_seed()
        doc = dict(example.flow_run, status="SUCCEEDED")
        db.collection("flow_runs").document(example.run_id).set(doc)
        worker = in_process_worker(
            services, db, gcs, store=CountingStore(None, "(default)", given=db)
        )
        for label, body_doc in (("decided from the event", doc), ("needing a read", None)):
            _, body = firestore_update_event(
                project="demo-tda", run_id=example.run_id, document=body_doc
            )
            times = []
            CountingStore.reads = 0
            for i in range(events):
                started = time.perf_counter()
                name, value = decode_body(body)
                event = Event(
                    f"e{i}",
                    "google.cloud.firestore.document.v1.updated",
                    f"documents/flow_runs/{example.run_id}",
                    document=name,
                    value=value,
                )
                finished = worker.handle(event)
                times.append((time.perf_counter() - started) * 1000)
            assert finished is not None and finished.status == "noop"
            print(summary(f"no-op {label} (decode + handle)", times[20:]))
            print(f"  Firestore reads per event: {CountingStore.reads / events:.2f}")


if __name__ == "__main__":
    main()
