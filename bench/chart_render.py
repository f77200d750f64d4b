"""One CHART_EXPORT step of 4 requests against the Chart-IMG stub answering in 300 ms.

(a) Where §9's per-account spacing does not bind (ULTRA: 35 req/s per account, one account;
and four accounts on BASIC): the requests run concurrently (`CHART_RENDER_CONCURRENCY` 4), so
the step's render phase should take about one request, ≤ 1.5x a single request's step.
(b) BASIC with one account: attempt starts stay 1 s apart, so the same step takes ~3 s more.
The worker runs in this process, built by the composition root with the real HTTP client and
in-memory Firestore, usage and storage (their cost is measured apart, `bench.chart_reservations`),
so the figures are the render path itself. `uv run python -m bench.chart_render`.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import compose
from adapters.chart_templates import FolderTemplates
from adapters.chart_usage import MemoryUsageStore
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from bench.common import summary
from devstack.chart_img_stub import ChartImgStub
from engine.cloudevent import Event
from states.chart_export.config import SHIPPED_TEMPLATES

RUN_ID = "20251215-102530_BTCUSDT_k3f7a"
STEP = "charts:1M:bench_v1"
TEMPLATES = (
    "ctpl_price_ma1226_vol_v1",
    "ctpl_price_rsi14_stochrsi_v1",
    "ctpl_price_psar_adi_v1",
    "ctpl_price_ma1226_bb_macd1226_v1",
)
DELAY_S = 0.3


def flow_run(requests: tuple[str, ...]) -> dict[str, Any]:
    return {
        "runId": RUN_ID,
        "status": "RUNNING",
        "scope": {"symbol": "BTCUSDT"},
        "steps": {
            STEP: {
                "stepType": "CHART_EXPORT",
                "status": "READY",
                "timeframe": "1M",
                "dependsOn": [],
                "inputs": {
                    "minImages": len(requests),
                    "requests": [{"chartTemplateId": t} for t in requests],
                },
            }
        },
    }


def one_step(stub: ChartImgStub, plan: str, accounts: int, requests: tuple[str, ...]) -> float:
    """Wall time (ms) of one invocation that renders `requests` and succeeds."""
    listed = [{"id": f"acc-{i}", "apiKey": f"bench-only-key-{i}"} for i in range(accounts)]
    stub.configure(
        plan,
        {a["apiKey"]: {"accountId": a["id"], "dailyLimit": 5000, "usedToday": 0} for a in listed},
        [{"match": {}, "times": 1000, "respond": {"status": 200, "delaySeconds": DELAY_S}}],
    )
    env = {
        "ARTIFACTS_BUCKET": "bench",
        "CHARTS_API_MODE": "real",
        "CHART_IMG_PLAN": plan,
        "CHART_IMG_BASE_URL": stub.base_url,
        "CHART_IMG_ACCOUNTS_JSON": json.dumps(listed),
        "LOG_LEVEL": "ERROR",
        "ENV": "bench",
    }
    store = MemoryDocumentStore({f"flow_runs/{RUN_ID}": flow_run(requests)})
    runner = compose.build(
        "chart_export",
        env,
        stream=io.StringIO(),
        store=store,
        blobs=MemoryBlobStore(),
        templates=FolderTemplates(SHIPPED_TEMPLATES),
        usage=MemoryUsageStore(5000, 5000),
    )
    event = Event(
        "bench", "google.cloud.firestore.document.v1.updated", f"documents/flow_runs/{RUN_ID}"
    )
    started = time.perf_counter()
    outcome = runner.handle(event)
    elapsed = (time.perf_counter() - started) * 1000
    assert outcome.status == "ok", outcome
    assert all(a["overLimit"] == 0 for a in stub.state()["accounts"].values())
    return elapsed


def main(runs: int = 5) -> None:
    with ChartImgStub() as stub:
        one_step(stub, "ULTRA", 1, TEMPLATES[:1])  # warm: TLS-free client, imports, schemas
        single = [one_step(stub, "ULTRA", 1, TEMPLATES[:1]) for _ in range(runs)]
        ultra = [one_step(stub, "ULTRA", 1, TEMPLATES) for _ in range(runs)]
        four = [one_step(stub, "BASIC", 4, TEMPLATES) for _ in range(runs)]
        basic = [one_step(stub, "BASIC", 1, TEMPLATES) for _ in range(3)]
    print(summary("one request, stub 300 ms (ULTRA, one account)", single))
    print(summary("four requests, ULTRA, one account (spacing 29 ms)", ultra))
    print(summary("four requests, BASIC, four accounts (spacing per account)", four))
    print(summary("four requests, BASIC, one account (1 s spacing binds)", basic))
    base = sorted(single)[len(single) // 2]
    for label, values in (("ULTRA/1", ultra), ("BASIC/4", four), ("BASIC/1", basic)):
        median = sorted(values)[len(values) // 2]
        print(f"  ratio to one request, {label}: {median / base:.2f}x")


if __name__ == "__main__":
    main()
