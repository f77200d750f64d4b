"""A storm of 32 concurrent deliveries of one event to two function processes.

Counts what must stay exactly one (claims won, Gemini calls, artifacts) and times the storm.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import REPORT, stack, summary
from devstack.cloudevents import firestore_update_event
from devstack.gemini_stub import ok
from devstack.services import FunctionServer, post_event


def deliver(server: FunctionServer, headers: dict[str, str], body: bytes) -> float:
    started = time.perf_counter()
    assert post_event(server.url, headers, body) == 200
    return (time.perf_counter() - started) * 1000


def main(rounds: int = 5, deliveries: int = 32) -> None:
    walls: list[float] = []
    per_delivery: list[float] = []
    with stack() as services, tempfile.TemporaryDirectory() as logs:
        servers = [
            FunctionServer(
                env={**services.env, "INSTANCE": str(i), "LOG_LEVEL": "WARNING"}, log_dir=Path(logs)
            ).start()
            for i in range(2)
        ]
        try:
            for r in range(rounds):
                db, gcs, example = services.reset_and_seed()
                services.gemini.reset()
                services.gemini.set_default(ok(REPORT))
                headers, body = firestore_update_event(
                    project="demo-tda",
                    run_id=example.run_id,
                    document=example.flow_run,
                    event_id=f"storm-{r}",
                )

                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=deliveries) as pool:
                    per_delivery.extend(
                        pool.map(
                            lambda i, h=headers, b=body: deliver(servers[i % 2], h, b),
                            range(deliveries),
                        )
                    )
                walls.append((time.perf_counter() - started) * 1000)
                step = db.collection("flow_runs").document(example.run_id).get().to_dict()
                status = step["steps"]["llm_report_1M_month_summary_v1"]["status"]
                artifacts = [
                    b.name
                    for b in gcs.list_blobs("artifacts-bucket")
                    if b.name.endswith("llm_report_1M_month_summary_v1.json")
                ]
                print(
                    f"round {r}: step {status}, gemini calls {len(services.gemini.requests)}, "
                    f"artifacts {len(artifacts)}"
                )
        finally:
            for server in servers:
                server.stop()
    print(summary(f"storm of {deliveries} deliveries, wall time until all answered", walls))
    print(summary("  per delivery", per_delivery))


if __name__ == "__main__":
    main()
