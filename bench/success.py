"""Success-path overhead per step beyond the Gemini call (zero-latency Gemini stub).

In-process worker with the production adapters against the Firestore emulator and
fake-gcs; the Gemini adapter (real SDK) calls the local stub, which answers at once. The
overhead is the whole handle() minus the time inside the model call.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import in_process_worker, stack, summary
from engine.cloudevent import Event


class Timed:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spent = 0.0

    def generate(self, request: Any, timeout_s: float) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.generate(request, timeout_s)
        finally:
            self.spent += time.perf_counter() - started


def main(runs: int = 20) -> None:
    totals, overheads, model = [], [], []
    with stack() as services:
        db, gcs, example = services.reset_and_seed()
        from adapters.gemini import GeminiLLM

        timed = Timed(GeminiLLM(services.env["GEMINI_API_KEY"]))
        worker = in_process_worker(services, db, gcs, llm=timed)
        for i in range(runs + 2):
            db.collection("flow_runs").document(example.run_id).set(example.flow_run)
            for blob in gcs.list_blobs("artifacts-bucket", prefix=example.run_id):
                if blob.name.endswith(".json") and "llm_report" in blob.name:
                    blob.delete()
            timed.spent = 0.0
            started = time.perf_counter()
            outcome = worker.handle(
                Event(
                    f"s{i}",
                    "google.cloud.firestore.document.v1.updated",
                    f"documents/flow_runs/{example.run_id}",
                )
            )
            total = time.perf_counter() - started
            assert outcome.status == "ok", outcome
            if i >= 2:  # the first runs warm the clients and the SDK
                totals.append(total * 1000)
                model.append(timed.spent * 1000)
                overheads.append((total - timed.spent) * 1000)
    print(summary("success path, whole step", totals))
    print(summary("  inside the Gemini call (SDK + local stub)", model))
    print(summary("  overhead beyond the Gemini call", overheads))


if __name__ == "__main__":
    main()
