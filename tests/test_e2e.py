"""Issue acceptance, end to end: real CloudEvents through functions-framework, the Firestore
emulator, fake-gcs-server and the real google-genai SDK against the Gemini stub."""

from __future__ import annotations

import base64
import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonschema
import pytest

from devstack.gemini_stub import ok
from devstack.services import FunctionServer
from tests import scenario
from tests.conftest import World
from tests.contracts import load


def events(server: FunctionServer, mark: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in server.log_json_lines(since=mark) if e.get("event") == name]


def test_happy_path(world: World, snapshot):
    doc = scenario.seed(world.db, world.gcs)
    world.gemini.script(ok(scenario.report_text()))
    mark, log_mark = world.journal.mark(), world.server.mark()

    assert world.deliver(doc) == 200

    step = scenario.step_of(world.db)
    assert step["status"] == "SUCCEEDED"
    assert step["outputs"]["gcs_uri"] == scenario.ARTIFACT_URI
    assert step["outputs"]["execution"]["llm"]["attempts"] == {"total": 1}

    artifact = json.loads(scenario.objects(world.gcs)[scenario.ARTIFACT_URI])
    jsonschema.validate(
        artifact, load("llm_report_file.schema.json"), format_checker=jsonschema.FormatChecker()
    )
    assert artifact["output"] == scenario.REPORT_OUTPUT
    assert artifact["metadata"]["schemaVersion"] == 1
    assert (
        artifact["metadata"]["llm"]["schemaSha256"]
        == load("examples/llm_schema.example.json")["sha256"]
    )

    [request] = world.gemini.requests
    prompt = load("examples/llm_prompt.example.json")
    assert request.body["systemInstruction"]["parts"][0]["text"] == prompt["systemInstruction"]
    parts = request.body["contents"][0]["parts"]
    assert parts[0]["text"].startswith(prompt["userPrompt"] + "\n\n<context>")
    assert "- price + MA12/26 + Volume\n    - RSI 14 + StochRSI" in parts[0]["text"]
    images = [base64.b64decode(p["inlineData"]["data"]) for p in parts[1:]]
    assert images == list(scenario.CHART_PNGS.values())
    config = request.body["generationConfig"]
    assert config["responseJsonSchema"] == load("examples/llm_schema.example.json")["jsonSchema"]
    assert config["responseMimeType"] == "application/json"

    [received] = events(world.server, log_mark, "cloud_event_received")
    assert received["document"].endswith(f"/documents/flow_runs/{scenario.RUN_ID}")
    names = [e["event"] for e in world.server.log_json_lines(since=log_mark)]
    order = [
        "cloud_event_received",
        "cloud_event_parsed",
        "ready_step_selected",
        "claim_attempt",
        "prompt_fetch_started",
        "context_resolve_started",
        "llm_request_started",
        "gcs_write_started",
        "step_completed",
        "cloud_event_finished",
    ]
    for earlier, later in itertools.pairwise(order):
        assert names.index(earlier) < names.index(later)
    assert scenario.normalized(world.journal.since(mark)) == snapshot


def no_op_case(name: str):
    return pytest.param(name, id=name)


def _run_not_running(doc):
    doc["status"] = "PENDING"
    return {}


def _no_ready_step(doc):
    doc["steps"][scenario.STEP]["status"] = "PENDING"
    return {}


def _dependency_running(doc):
    doc["steps"][scenario.CHARTS_STEP]["status"] = "RUNNING"
    return {}


def _dependency_skipped(doc):
    doc["steps"][scenario.CHARTS_STEP]["status"] = "SKIPPED"
    return {}


def _invalid_subject(doc):
    return {"subject": "documents/flow_runs/not-a-run-id"}


def _missing_document(doc):
    return {"run_id": "20251224-120000_BTCUSDT_zzzzz"}


NO_OPS = {
    "run_not_running": (_run_not_running, "cloud_event_noop", "run_not_running"),
    "no_ready_step": (_no_ready_step, "cloud_event_noop", "no_ready_step"),
    "dependency_running": (_dependency_running, "cloud_event_noop", "dependency_not_succeeded"),
    "dependency_skipped": (_dependency_skipped, "cloud_event_noop", "dependency_not_succeeded"),
    "invalid_subject": (_invalid_subject, "cloud_event_ignored", "invalid_subject"),
    "missing_document": (_missing_document, "cloud_event_ignored", "flow_run_not_found"),
}


@pytest.mark.parametrize("case", sorted(NO_OPS))
def test_no_op_paths_write_nothing_and_call_nothing(world: World, case: str):
    mutate, event_name, reason = NO_OPS[case]
    doc = scenario.flow_run()
    event = mutate(doc)
    scenario.seed(world.db, world.gcs, doc)
    before_doc = world.db.collection("flow_runs").document(scenario.RUN_ID).get()
    before_objects = scenario.objects(world.gcs)
    mark, log_mark = world.journal.mark(), world.server.mark()

    assert world.deliver(doc, **event) == 200

    assert world.journal.since(mark) == []
    after_doc = world.db.collection("flow_runs").document(scenario.RUN_ID).get()
    assert after_doc.update_time == before_doc.update_time
    assert scenario.objects(world.gcs) == before_objects
    assert world.gemini.requests == []
    [entry] = events(world.server, log_mark, event_name)
    assert entry["reason"] == reason
    [finished] = events(world.server, log_mark, "cloud_event_finished")
    assert finished["status"] == "noop"


def test_same_event_again_after_success_is_a_no_op(world: World):
    doc = scenario.seed(world.db, world.gcs)
    world.gemini.script(ok(scenario.report_text()))
    assert world.deliver(doc, event_id="evt-1") == 200
    assert scenario.step_of(world.db)["status"] == "SUCCEEDED"
    before = scenario.objects(world.gcs)
    mark, log_mark = world.journal.mark(), world.server.mark()

    assert world.deliver(doc, event_id="evt-1") == 200

    assert world.journal.since(mark) == []
    assert scenario.objects(world.gcs) == before
    assert len(world.gemini.requests) == 1
    [noop] = events(world.server, log_mark, "cloud_event_noop")
    assert noop["reason"] == "no_ready_step"


def test_sixteen_concurrent_deliveries_execute_the_step_once(world: World):
    doc = scenario.seed(world.db, world.gcs)
    world.gemini.script(ok(scenario.report_text(), delay=0.5))
    second = world.start_function({"INSTANCE": "second"})  # a second instance, same services
    servers = [world.server, second]
    marks = [s.mark() for s in servers]
    mark = world.journal.mark()

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(
            pool.map(
                lambda i: world.deliver(doc, server=servers[i % 2], event_id="evt-storm"), range(16)
            )
        )

    assert statuses == [200] * 16
    claims = [
        e
        for s, m in zip(servers, marks, strict=True)
        for e in events(s, m, "claim_attempt")
        if e["claimed"]
    ]
    assert len(claims) == 1
    assert len(world.gemini.requests) == 1
    artifacts = [
        uri for uri in scenario.objects(world.gcs) if uri.endswith(f"{scenario.STEP}.json")
    ]
    assert artifacts == [scenario.ARTIFACT_URI]
    step = scenario.step_of(world.db)
    assert step["status"] == "SUCCEEDED"
    writes = world.journal.since(mark)
    claims_written = [
        w for w in writes if w["fields"].get(f"steps.{scenario.STEP}.status") == "RUNNING"
    ]
    finals = [w for w in writes if w["fields"].get(f"steps.{scenario.STEP}.status") == "SUCCEEDED"]
    assert (len(claims_written), len(finals)) == (1, 1)


def test_two_ready_steps_execute_the_smaller_id_only(world: World):
    doc = scenario.flow_run()
    other = "llm_report_1M_month_summary_v2"
    doc["steps"][other] = json.loads(json.dumps(doc["steps"][scenario.STEP]))
    scenario.seed(world.db, world.gcs, doc)
    world.gemini.script(ok(scenario.report_text()))

    assert world.deliver(doc) == 200

    assert scenario.step_of(world.db)["status"] == "SUCCEEDED"
    assert scenario.step_of(world.db, other)["status"] == "READY"
    assert len(world.gemini.requests) == 1


def test_logs_carry_the_request_trace(world: World):
    scenario.seed(world.db, world.gcs)
    world.gemini.script(ok(scenario.report_text()))
    from devstack.cloudevents import firestore_update_event
    from devstack.services import post_event

    headers, body = firestore_update_event(
        project="demo-tda", run_id=scenario.RUN_ID, document=scenario.flow_run()
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers["traceparent"] = f"00-{trace_id}-00f067aa0ba902b7-01"
    log_mark = world.server.mark()
    assert post_event(world.server.url, headers, body) == 200
    lines = [
        e for e in world.server.log_json_lines(since=log_mark) if e["event"] != "worker_configured"
    ]
    assert lines and all(
        e["logging.googleapis.com/trace"] == f"projects/demo-tda/traces/{trace_id}" for e in lines
    )
