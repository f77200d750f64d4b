"""Chaos for CHART_EXPORT: quota that cannot cover the demand, racing instances, duplicated and
reordered deliveries, and a SIGKILL on entering each lifecycle stage, then stale recovery.

Real local services throughout: the Firestore emulator, fake-gcs-server, the Chart-IMG stub and
four functions-framework processes (three healthy, one that kills itself), each serving one
invocation at a time like a deployed instance (concurrency 1). Afterwards the audit holds the
worker to its promises: the stub's per-key counts equal the committed usage counters and no key
passed its limit; every step is terminal; every SUCCEEDED step has its manifest and its PNGs;
nothing was overwritten; every failure is the quota running out (CHART_API_LIMIT_EXCEEDED) or a
kill before the manifest (STEP_LEASE_EXPIRED); and no key reached a log, a document or an
object. One `chaos: scenario=chart_quota_crash ...` figures line is printed for CI.
"""

from __future__ import annotations

import copy
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import compose
from adapters.chart_templates import FirestoreTemplates
from adapters.chart_usage import FirestoreUsageStore
from adapters.firestore import FirestoreDocumentStore
from adapters.gcs import GcsBlobStore
from devstack.bridge import EventBridge
from devstack.chart_img_stub import ChartImgStub
from devstack.cloudevents import firestore_update_event
from devstack.services import FunctionServer
from states.chart_export.chart_api import Account, ChartAttempt, ChartRequest
from tests.chaos.harness import Crasher, Deliveries, figures, leaks, wait_for
from tests.conftest import PROJECT
from tests.contracts import load

SEED = 20251215
BUCKET = "artifacts-bucket"
TARGET = "on_chart_export_flow_run_updated"
TEMPLATES = (
    "ctpl_price_ma1226_vol_v1",
    "ctpl_price_rsi14_stochrsi_v1",
    "ctpl_price_psar_adi_v1",
)
DAILY_LIMIT = 14  # three accounts: 42 requests a day for a demand of 96
ACCOUNTS: list[dict[str, str]] = [
    {"id": f"acc-{i}", "apiKey": f"chaos-only-not-a-real-key-{i}"} for i in (1, 2, 3)
]
# Stages of a step; the kill comes on entering each (before it does anything).
CRASH_STATES = (
    "RUNNING_claim",
    "RUNNING_probe",
    "RUNNING_inputs",
    "RUNNING_templates",
    "RUNNING_render",
    "RUNNING_pngs",
    "RUNNING_manifest",
    "RUNNING_finalize",
)
BEFORE_MANIFEST = frozenset(CRASH_STATES[1:7])  # claimed, no manifest: the lease ends them
HOOKED = (*CRASH_STATES, "RUNNING_adopt")
LOAD_RUNS, STEPS_PER_RUN = 8, 3


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "ARTIFACTS_BUCKET": BUCKET,
        "ENV": "chaos",
        "CHARTS_API_MODE": "real",
        "CHART_IMG_PLAN": "PRO",
        "CHART_IMG_ACCOUNTS_JSON": json.dumps([{**a, "dailyLimit": DAILY_LIMIT} for a in ACCOUNTS]),
        "CHART_IMG_BACKOFF_BASE_SECONDS": "0.05",
        "CHART_IMG_BACKOFF_MAX_SECONDS": "0.2",
        "THREADS": "1",  # one invocation at a time per instance, as deployed
        **(extra or {}),
    }


def flow_run(run_id: str, steps: int) -> dict[str, Any]:
    base = load("chart_export/test_vectors/flow_run_ready_chart_step.json")
    doc: dict[str, Any] = copy.deepcopy(base)
    doc["runId"] = run_id
    ohlcv = next(s for s, v in doc["steps"].items() if v["stepType"] != "CHART_EXPORT")
    chart = next(s for s, v in doc["steps"].items() if v["stepType"] == "CHART_EXPORT")
    template = doc["steps"].pop(chart)
    doc["steps"][ohlcv]["status"] = "SUCCEEDED"
    for index in range(steps):
        step = copy.deepcopy(template)
        step.update(status="READY", timeframe="1M", dependsOn=[ohlcv], outputs={})
        step["inputs"] = {
            "minImages": len(TEMPLATES),
            "requests": [{"chartTemplateId": t} for t in TEMPLATES],
        }
        doc["steps"][f"charts:1M:set{index}_v1"] = step
    return doc


def run_ids(tag: str, count: int) -> list[str]:
    return [f"20251215-1{i:02d}000_BTCUSDT_{tag}{i:02d}" for i in range(count)]


class NoCall:
    """Stale recovery must never call Chart-IMG."""

    def __init__(self) -> None:
        self.calls = 0

    def render(
        self, request: ChartRequest, account: Account | None, timeout_s: float
    ) -> ChartAttempt:
        self.calls += 1
        raise AssertionError("stale recovery called Chart-IMG")


@pytest.fixture(scope="module")
def chart_stub() -> Iterator[ChartImgStub]:
    with ChartImgStub() as stub:
        yield stub


def chart_steps(db: Any, ids: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for run_id in ids:
        data = db.collection("flow_runs").document(run_id).get().to_dict() or {}
        for step_id, step in (data.get("steps") or {}).items():
            if step.get("stepType") == "CHART_EXPORT":
                found[(run_id, step_id)] = step
    return found


def objects(gcs: Any) -> dict[str, tuple[int, bytes]]:
    return {
        f"gs://{BUCKET}/{b.name}": (int(b.generation or 0), b.download_as_bytes())
        for b in gcs.list_blobs(BUCKET)
    }


def test_quota_races_duplicates_and_crashes_at_every_stage(
    firestore, gcs, chart_stub, function_server_factory, tmp_path_factory, capsys
):
    started = time.monotonic()
    stub_keys = {
        a["apiKey"]: {"accountId": a["id"], "dailyLimit": DAILY_LIMIT, "usedToday": 0}
        for a in ACCOUNTS
    }
    chart_stub.configure("PRO", stub_keys, [])
    base = env({"CHART_IMG_BASE_URL": chart_stub.base_url})
    servers: list[FunctionServer] = [
        function_server_factory({**base, "INSTANCE": f"chart-{n}"}, target=TARGET)
        for n in ("a", "b", "c")
    ]
    once = Path(tmp_path_factory.mktemp("chart-crash-once"))
    env_crash = {**base, "INSTANCE": "chart-crash", **Crasher.env(once, HOOKED)}
    crasher = Crasher(function_server_factory(env_crash, target=TARGET), once, HOOKED)
    crash = crasher.server
    for template_id in TEMPLATES:
        document = load(f"chart_export/chart-templates/{template_id}.json")
        firestore.collection("chart_templates").document(template_id).set(document)
    if not gcs.bucket(BUCKET).exists():
        gcs.create_bucket(BUCKET)
    marks = [s.mark() for s in (*servers, crash)]

    # --- 1. a kill on entering each stage, redelivery, then stale recovery -----------------
    crash_ids = run_ids("kx", len(CRASH_STATES))
    target: dict[tuple[str, str], str] = {}
    for run_id, state in zip(crash_ids, CRASH_STATES, strict=True):
        doc = flow_run(run_id, 1)
        (step_id,) = [s for s, v in doc["steps"].items() if v["stepType"] == "CHART_EXPORT"]
        target[(run_id, step_id)] = state
        also = ["RUNNING_adopt"] if state == "RUNNING_finalize" else []
        crasher.arm(run_id, step_id, state, *also)
        firestore.collection("flow_runs").document(run_id).set(doc)
    armed_before = crasher.markers()
    deliveries = Deliveries()
    for run_id in crash_ids:
        doc = firestore.collection("flow_runs").document(run_id).get().to_dict()
        event = firestore_update_event(project=PROJECT, run_id=run_id, document=doc)
        for url in (crash.url, crash.url, servers[0].url, crash.url):
            deliveries.post(url, event)
    kills = len(crasher.crashes(armed_before))

    sink = io.StringIO()
    recovery_api = NoCall()
    recovery = compose.build(
        "chart_export",
        env({"CHART_IMG_BASE_URL": chart_stub.base_url}),
        stream=sink,
        store=FirestoreDocumentStore(None, "(default)", given=firestore),
        blobs=GcsBlobStore(given=gcs),
        templates=FirestoreTemplates(None, "(default)", "chart_templates", given=firestore),
        chart_api=recovery_api,
        usage=FirestoreUsageStore(
            None, "(default)", "chart_img_accounts_usage", 44, 500, given=firestore
        ),
    )
    recovered = recovery.scan(0.001)  # every claim is older than this lease

    # --- 2. load: quota for part of the demand, duplicated and reordered deliveries -------
    load_ids = run_ids("ld", LOAD_RUNS)
    urls = [s.url for s in servers]
    with EventBridge(
        db=firestore,
        function_urls=urls,
        project=PROJECT,
        duplicate=2,
        delay=0.3,
        reorder_window=8,
        seed=SEED,
        workers=9,
    ) as bridge:
        for run_id in load_ids:
            firestore.collection("flow_runs").document(run_id).set(flow_run(run_id, STEPS_PER_RUN))

        def settled() -> bool:
            return all(
                s.get("status") in ("SUCCEEDED", "FAILED")
                for s in chart_steps(firestore, load_ids).values()
            )

        wait_for(settled, 45, lambda: "load steps not terminal", interval=0.3)
    bridged = bridge.stats

    # --- 3. stale replays of every READY version and a second scan change nothing ----------
    every = crash_ids + load_ids
    before_steps = chart_steps(firestore, every)
    before_objects = objects(gcs)
    replays = Deliveries()
    jobs = []
    for run_id in every:
        ready = flow_run(run_id, 1 if run_id in crash_ids else STEPS_PER_RUN)
        event = firestore_update_event(project=PROJECT, run_id=run_id, document=ready)
        jobs += [(url, event) for url in urls]
    replays.storm(jobs, seed=SEED, max_delay=0.2)
    again = recovery.scan(0.001)

    # --- the audit -----------------------------------------------------------------------
    violations: list[str] = []
    final = chart_steps(firestore, every)
    after_objects = objects(gcs)
    if final != before_steps:
        violations.append("a terminal step was written again")
    if after_objects != before_objects:
        violations.append("an object was written or overwritten after the steps ended")
    state = chart_stub.state()
    usage = {s.id: s.to_dict() for s in firestore.collection("chart_img_accounts_usage").stream()}
    for account in ACCOUNTS:
        seen = state["accounts"][account["id"]]
        committed = (usage.get(account["id"]) or {}).get("usageToday", 0)
        if seen["requests"] != committed:
            violations.append(
                f"{account['id']}: stub saw {seen['requests']}, committed {committed}"
            )
        if seen["overLimit"] or committed > DAILY_LIMIT:
            violations.append(f"{account['id']}: over its limit")
    codes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for (run_id, step_id), step in final.items():
        status = step.get("status")
        statuses[str(status)] += 1
        folder = f"gs://{BUCKET}/charts/{run_id}/{step_id}/"
        manifest_uri = folder + "manifest.json"
        if status == "SUCCEEDED":
            if step["outputs"].get("gcs_uri") != manifest_uri or manifest_uri not in after_objects:
                violations.append(f"{run_id}/{step_id}: SUCCEEDED without its manifest")
                continue
            manifest = json.loads(after_objects[manifest_uri][1])
            if (manifest["runId"], manifest["stepId"]) != (run_id, step_id):
                violations.append(f"{run_id}/{step_id}: manifest of another step")
            missing = [i for i in manifest["items"] if i["png_gcs_uri"] not in after_objects]
            if missing or len(manifest["items"]) < manifest["minImages"]:
                violations.append(f"{run_id}/{step_id}: manifest without its PNGs")
        elif status == "FAILED":
            code = step["error"]["code"]
            codes[code] += 1
            crashed = target.get((run_id, step_id))
            expected = (
                "STEP_LEASE_EXPIRED" if crashed in BEFORE_MANIFEST else "CHART_API_LIMIT_EXCEEDED"
            )
            if code != expected:
                violations.append(f"{run_id}/{step_id}: FAILED {code}, expected {expected}")
            if manifest_uri in after_objects:
                violations.append(f"{run_id}/{step_id}: FAILED with a manifest")
        else:
            violations.append(f"{run_id}/{step_id}: left {status}")
    for key, state_name in target.items():
        status = final[key]["status"]
        if state_name not in BEFORE_MANIFEST and status != "SUCCEEDED":
            violations.append(f"killed on entering {state_name}: ended {status}")
    won: Counter[str] = Counter()
    for server, mark in zip((*servers, crash), marks, strict=True):
        for record in server.log_json_lines(mark):
            if record.get("event") == "claim_attempt" and record.get("claimed"):
                won[f"{record.get('runId')}/{record.get('stepId')}"] += 1
    violations += [f"{step}: claimed {n} times" for step, n in won.items() if n > 1]
    if recovery_api.calls:
        violations.append("stale recovery called Chart-IMG")
    sigkills = len(crasher.kills(marks[-1]))
    violations += crasher.mismatch(armed_before, marks[-1])
    texts = {f"key of {a['id']}": a["apiKey"] for a in ACCOUNTS}
    sources = {f"function :{s.port} log": s.log_text() for s in (*servers, crash)}
    sources["recovery log"] = sink.getvalue()
    sources["firestore"] = json.dumps([list(final.values()), usage], default=str)
    sources["gcs"] = b"".join(data for _, data in after_objects.values()).decode("latin-1")
    violations += leaks(sources, texts)

    with capsys.disabled():
        print(
            "\n"
            + figures(
                "chart_quota_crash",
                steps=len(final),
                runs=len(every),
                deliveries=deliveries.total + bridged.deliveries + replays.total,
                crashes=kills,
                sigkills=sigkills,
                violations=len(violations),
                stub_requests=state["total"],
                committed=sum((u or {}).get("usageToday", 0) for u in usage.values()),
                quota=DAILY_LIMIT * len(ACCOUNTS),
                demand=len(final) * len(TEMPLATES),
                succeeded=statuses["SUCCEEDED"],
                failed=statuses["FAILED"],
                limit_exceeded=codes["CHART_API_LIMIT_EXCEEDED"],
                lease_expired=recovered["expired"],
                seconds=f"{time.monotonic() - started:.1f}",
            ),
            flush=True,
        )
    for server in (*servers, crash):  # idle processes are not needed by the rest of the session
        server.stop()
    assert violations == [], "\n".join(violations)
    assert kills == sigkills == len(CRASH_STATES) + 1  # + the adopt of the finalize run
    assert recovered["expired"] == len(BEFORE_MANIFEST)
    assert again["stale"] == 0
    assert codes["CHART_API_LIMIT_EXCEEDED"] > 0 and statuses["SUCCEEDED"] > 2  # it did bind
