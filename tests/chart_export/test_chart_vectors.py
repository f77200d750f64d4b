"""Every scenario of `contracts/chart_export/test_vectors/cases/` through the deployed shape.

The function runs under functions-framework (`on_chart_export_flow_run_updated` of entry.py)
against the Firestore emulator, fake-gcs-server and the Chart-IMG stub, and receives one
Eventarc CloudEvent per case. Each case's `expect` is checked by the comparison rules of the
vectors README; the function's Firestore writes (its write journal), the manifest and what the
stub saw are snapshotted. Every case also proves the stub saw no request past a key's daily
limit and that no account key reached a log line, a Firestore document, a GCS object or a
fixture. Processes are shared by cases with the same environment, so only a few start.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devstack.chart_img_stub import ChartImgStub
from devstack.cloudevents import firestore_update_event
from devstack.services import FunctionServer, post_event
from tests import scenario
from tests.conftest import PROJECT
from tests.contracts import CONTRACTS, load

CHARTS = CONTRACTS / "chart_export"
CASES = sorted((CHARTS / "test_vectors" / "cases").glob("*.json"))
MANIFEST_SCHEMA = load("chart_export/charts_outputs_manifest.schema.json")
PATCH_SCHEMA = load("chart_export/chart_export_finalize_patch.schema.json")
TARGET = "on_chart_export_flow_run_updated"
TIMESTAMP_KEYS = {"startedAt", "finishedAt", "createdAt", "generatedAt", "exhaustedAt", "updatedAt"}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
# Cases that leave an account exhausted in the instance's memory for the rest of the UTC day
# get a process of their own: a later case on the same process would skip that account.
ISOLATED = {"daily_limit_first_account_then_second", "provider_limit_exceeded_all_accounts"}


def case_env(case: dict[str, Any], stub: ChartImgStub, journal: scenario.Journal) -> dict[str, str]:
    env = {k: v.replace("${STUB_URL}", stub.base_url) for k, v in case["env"].items()}
    if "CHARTS_FIXTURES_DIR" in env:
        env["CHARTS_FIXTURES_DIR"] = str(CHARTS / env["CHARTS_FIXTURES_DIR"])
    if case["accounts"] is not None:
        env["CHART_IMG_ACCOUNTS_JSON"] = json.dumps(case["accounts"])
    env["WORKER_TEST_NOW"] = case["clock"]["now"]
    env["WORKER_WRITE_JOURNAL"] = str(journal.path)
    if case["vector"] in ISOLATED:
        env["WORKER_TEST_INSTANCE"] = case["vector"]
    return env


def resolved(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$contract"}:
        return load(f"chart_export/{value['$contract']}")
    return value


def object_bytes(spec: dict[str, Any]) -> tuple[bytes, str]:
    if "$file" in spec:
        path = CHARTS / spec["$file"]
        return path.read_bytes(), "image/png" if path.suffix == ".png" else "application/json"
    return json.dumps(spec["$json"]).encode(), "application/json"


def seed(case: dict[str, Any], db: Any, gcs: Any) -> None:
    for path, doc in case["firestore"].items():
        collection, doc_id = path.split("/", 1)
        db.collection(collection).document(doc_id).set(resolved(doc))
    bucket = gcs.bucket(scenario.BUCKET)
    if not bucket.exists():
        gcs.create_bucket(scenario.BUCKET)
    for uri, spec in case["gcs"].items():
        data, content_type = object_bytes(spec)
        scenario.upload(gcs, uri, data, content_type)


def usage_docs(db: Any) -> dict[str, Any]:
    return {s.id: s.to_dict() for s in db.collection("chart_img_accounts_usage").stream()}


def compare(expected: Any, actual: Any, where: str = "", message_max: int = 1024) -> list[str]:
    """The README's rules: exact keys and order; timestamps as RFC3339 `Z`; durations as
    integers ≥ 0; error messages as non-empty strings within their limit."""
    key = where.rsplit(".", 1)[-1]
    if key in TIMESTAMP_KEYS:
        ok = isinstance(actual, str) and RFC3339_Z.match(actual) is not None
        return [] if ok else [f"{where}: {actual!r} is not an RFC3339 UTC timestamp"]
    if key == "durationMs":
        ok = isinstance(actual, int) and not isinstance(actual, bool) and actual >= 0
        return [] if ok else [f"{where}: {actual!r} is not a duration"]
    if key == "message" and ".error" in where:
        ok = isinstance(actual, str) and 0 < len(actual) <= message_max
        return [] if ok else [f"{where}: message {actual!r} out of bounds"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(actual) != set(expected):
            return [f"{where}: keys {sorted(actual or {})} != {sorted(expected)}"]
        return [
            problem
            for k in expected
            for problem in compare(expected[k], actual[k], f"{where}.{k}", message_max)
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r} != {expected!r}"]
        return [
            problem
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for problem in compare(e, a, f"{where}[{i}]", message_max)
        ]
    return [] if expected == actual else [f"{where}: {actual!r} != {expected!r}"]


def stub_seen(state: dict[str, Any]) -> dict[str, Any]:
    """What the stub saw, without the times of day, in a stable order (the requests of one
    step run concurrently, so their arrival order is not part of the contract)."""
    requests = [
        {k: v for k, v in request.items() if k not in ("time", "monotonic")}
        for request in state["requests"]
    ]
    return {
        "total": state["total"],
        "byAccount": state["byAccount"],
        "requests": sorted(requests, key=lambda r: json.dumps(r, sort_keys=True)),
    }


@pytest.fixture(scope="module")
def servers() -> Iterator[list[FunctionServer]]:
    """The function processes this module started, stopped when it ends: the rest of the
    session does not need them, and idle processes still cost the machine memory."""
    started: list[FunctionServer] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def stub(chart_img_stub_server: ChartImgStub) -> ChartImgStub:
    chart_img_stub_server.reset()
    return chart_img_stub_server


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_vector(
    path: Path, firestore, gcs, stub, function_server_factory, journal, servers, snapshot
):
    case = json.loads(path.read_text(encoding="utf-8"))
    expect = case["expect"]
    server: FunctionServer = function_server_factory(case_env(case, stub, journal), target=TARGET)
    if server not in servers:
        servers.append(server)
    seed(case, firestore, gcs)
    stub.configure(case["stub"]["plan"], case["stub"]["keys"], case["stub"]["script"])
    (run_path,) = [p for p in case["firestore"] if p.startswith("flow_runs/")]
    run_id = run_path.split("/", 1)[1]
    stored = case["firestore"][run_path]
    seeded_usage = usage_docs(firestore)
    before = scenario.objects(gcs)
    mark, log_mark = journal.mark(), server.mark()

    event = case.get("event", {})
    headers, body = firestore_update_event(
        project=PROJECT,
        run_id=run_id,
        document=event.get("documentValue", stored),
        event_type=event.get("type", "google.cloud.firestore.document.v1.updated"),
    )
    assert post_event(server.url, headers, body) == 200

    writes = journal.since(mark)
    state = stub.state()
    after = scenario.objects(gcs)
    usage = usage_docs(firestore)
    logs = server.log_json_lines(since=log_mark)
    steps = (firestore.collection("flow_runs").document(run_id).get().to_dict() or {})["steps"]
    step_id = next(s for s, v in stored["steps"].items() if v["stepType"] == "CHART_EXPORT")
    step = steps[step_id]
    problems: list[str] = []

    # --- the outcome
    if expect["outcome"] == "NOOP":
        reasons = [e.get("reason") for e in logs if e.get("event") == "cloud_event_noop"]
        assert expect["noopReason"] in reasons and writes == []
    else:
        assert step["status"] == expect["outcome"]
    if "errorCode" in expect:
        assert step["error"]["code"] == expect["errorCode"]
    claims = [w for w in writes if not any(k.endswith(".finishedAt") for k in w["fields"])]
    finals = [w for w in writes if any(k.endswith(".finishedAt") for k in w["fields"])]
    assert len(claims) == (1 if expect["claim"] else 0)
    if expect["claim"]:
        assert writes[0] is claims[0] and set(claims[0]["fields"]) == {
            f"steps.{step_id}.status",
            f"steps.{step_id}.outputs.execution.timing.startedAt",
        }
    if expect.get("finalizePatch", False) is None:
        assert finals == []
    elif "finalizePatch" in expect:
        (final,) = finals
        jsonschema.validate(final["fields"], PATCH_SCHEMA)
        problems += compare(expect["finalizePatch"], final["fields"], "finalizePatch")
    elif finals:
        jsonschema.validate(finals[-1]["fields"], PATCH_SCHEMA)

    # --- the bucket, the manifest and the usage documents
    folder = f"gs://{scenario.BUCKET}/charts/{run_id}/{step_id}/"
    manifest_data = after.get(folder + "manifest.json")
    if "manifest" in expect:
        if expect["manifest"] is None:
            # None: this invocation wrote none. One case seeds a manifest and expects null with
            # `noWrites`; the seeded object must then be exactly as it was.
            assert manifest_data == before.get(folder + "manifest.json")
        else:
            assert manifest_data is not None
            problems += compare(expect["manifest"], json.loads(manifest_data), "manifest", 200)
    if manifest_data is not None:
        assert len(manifest_data) <= 65536
        jsonschema.validate(json.loads(manifest_data), MANIFEST_SCHEMA)
    if "gcsObjects" in expect:
        assert sorted(after) == sorted(expect["gcsObjects"])
    for account_id, doc in expect.get("usage", {}).items():
        if doc is None:
            assert account_id not in usage, account_id
        else:
            problems += compare(doc, usage.get(account_id), f"usage.{account_id}")
    if expect.get("usageUnchanged"):
        assert usage == seeded_usage
    if expect.get("gcsUnchanged"):
        assert after == before
    if expect.get("noWrites"):
        assert writes == [] and after == before and usage == seeded_usage

    # --- what the stub saw
    if "stubRequests" in expect:
        assert state["total"] == expect["stubRequests"]["total"]
        assert state["byAccount"] == expect["stubRequests"]["byAccount"]
    if "minGapSeconds" in expect:
        times = [r["monotonic"] for r in state["requests"]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps and min(gaps) >= expect["minGapSeconds"]
    assert all(acc["overLimit"] == 0 for acc in state["accounts"].values())
    names = {e.get("event") for e in logs}
    assert set(expect.get("logEvents", [])) <= names
    for entry in logs:
        assert not {"uncatalogued", "missingFields", "payloadRejected"} & set(entry), entry

    # --- no key anywhere
    keys = [a["apiKey"] for a in case["accounts"] or []] + list(case["stub"]["keys"])
    everything = {
        "log": server.log_text(since=log_mark),
        "firestore": json.dumps([steps, usage], default=str),
        "gcs": b"".join(after.values()).decode("latin-1"),
        "fixtures": "".join(
            p.read_bytes().decode("latin-1")
            for p in (CHARTS / "fixtures" / "mock").iterdir()
            if p.is_file()
        ),
    }
    for key in keys:
        for where, text in everything.items():
            assert key not in text, f"an account key reached the {where}"

    assert problems == []
    assert {
        "writes": scenario.normalized(writes),
        "manifest": scenario.normalized(json.loads(manifest_data)) if manifest_data else None,
        "stub": stub_seen(state),
    } == snapshot
