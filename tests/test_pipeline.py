"""The TDA pipeline end to end: a CHART_EXPORT step feeding an LLM_REPORT step, two workers.

Both workers run as functions-framework processes behind their own Eventarc stand-in on
`flow_runs` (two triggers on one collection, as deployed), with the Chart-IMG stub and the
Gemini stub. Nobody orchestrates between them: the LLM step is READY from the start and waits on
its dependency, and the chart worker's finalize write is the event that wakes the LLM worker.
The charts the report was made from are the very PNGs the chart worker stored.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from devstack import dev_up
from devstack.bridge import EventBridge
from devstack.chart_img_stub import ChartImgStub
from devstack.example import PIPELINE_EXAMPLE, load_example, seed
from devstack.gemini_stub import ok
from tests.conftest import PROJECT

EXAMPLE = load_example(PIPELINE_EXAMPLE)
RUN_ID = EXAMPLE.run_id
CHARTS = "charts_1M_price_pair_v1"
REPORT = "llm_report_1M_month_summary_v1"
BUCKET = dev_up.artifacts_bucket(EXAMPLE)
FLOW_RUN_TRIGGERS = [t for t in dev_up.TRIGGERS if t.collection == dev_up.FLOW_RUNS]


def steps(db: Any) -> dict[str, Any]:
    data: dict[str, Any] = db.collection("flow_runs").document(RUN_ID).get().to_dict()
    return dict(data["steps"])


def wait_until_terminal(db: Any, bridges: list[EventBridge], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        now = steps(db)
        if all(now[s]["status"] in dev_up.STEP_TERMINAL for s in (CHARTS, REPORT)):
            break
        assert time.monotonic() < deadline, {s: now[s]["status"] for s in (CHARTS, REPORT)}
        time.sleep(0.1)
    for bridge in bridges:
        assert bridge.wait_idle(timeout=15.0, quiet=0.5)


def read(gcs: Any, uri: str) -> bytes:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    data: bytes = gcs.bucket(bucket).blob(name).download_as_bytes()
    return data


def test_charts_rendered_then_the_report_made_from_them(
    firestore, gcs, gemini, function_server_factory
):
    gemini.set_default(ok(json.dumps(dev_up.DEMO_REPORT)))
    with ChartImgStub() as server:
        charts = dev_up.demo_account(server)
        servers = {
            trigger.worker: function_server_factory(
                dev_up.worker_env(trigger, {}, BUCKET, gemini.base_url, charts.base_url),
                target=trigger.target,
            )
            for trigger in FLOW_RUN_TRIGGERS
        }
        bridges = [
            EventBridge(
                db=firestore,
                function_urls=[servers[trigger.worker].url],
                project=PROJECT,
                collection=trigger.collection,
                event_type=trigger.event_type,
            )
            for trigger in FLOW_RUN_TRIGGERS
        ]
        for bridge in bridges:
            bridge.start()
        try:
            seed(EXAMPLE, firestore, gcs)
            firestore.collection("flow_runs").document(RUN_ID).update({"updatedAt": "touched"})
            wait_until_terminal(firestore, bridges)
        finally:
            for bridge in bridges:
                bridge.stop()
        stub = charts.state()
        png = charts.png

    final = steps(firestore)
    chart_step, report_step = final[CHARTS], final[REPORT]
    assert chart_step["status"] == "SUCCEEDED", chart_step.get("error")
    assert report_step["status"] == "SUCCEEDED", report_step.get("error")
    started = report_step["outputs"]["execution"]["timing"]["startedAt"]
    assert started >= chart_step["finishedAt"]  # the report waited for its dependency

    # Charts rendered: one Chart-IMG call per request, none over the account's limit, both PNGs
    # stored where the manifest says, the manifest where the step's outputs say.
    assert stub["total"] == 2
    assert stub["byAccount"] == {dev_up.DEV_CHART_ACCOUNT: 2}
    assert all(a["overLimit"] == 0 for a in stub["accounts"].values())
    manifest_uri = chart_step["outputs"]["gcs_uri"]
    manifest = json.loads(read(gcs, manifest_uri))
    stored = [read(gcs, item["png_gcs_uri"]) for item in manifest["items"]]
    assert len(stored) == 2 and all(data == png for data in stored)

    # The report was made from those charts: the model saw exactly the stored PNGs, and the
    # report names the manifest it read.
    assert len(gemini.requests) == 1
    parts = [p for c in gemini.requests[0].body["contents"] for p in c["parts"]]
    # google-genai encodes bytes URL-safe (the JSON mapping of protobuf `bytes` accepts both).
    images = [base64.urlsafe_b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]
    assert images == stored
    report = json.loads(read(gcs, report_step["outputs"]["gcs_uri"]))
    assert report["metadata"]["inputs"]["charts_outputsManifestGcsUri"] == manifest_uri
    assert report["output"] == dev_up.DEMO_REPORT
