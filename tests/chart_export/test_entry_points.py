"""The CHART_EXPORT entry functions of `entry.py`, in this process, through functions-framework's
own test client: each reaches the chart worker the composition root builds for the instance
(here on in-memory adapters and typed fakes)."""

from __future__ import annotations

import io
import json

import functions_framework
import pytest

import compose
from adapters.chart_usage import MemoryUsageStore
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from devstack import REPO_ROOT
from devstack.cloudevents import firestore_update_event
from tests.chart_export.test_lifecycle import RUN_ID, STEP, documents, environ, running, templates
from tests.conftest import PROJECT
from tests.fakes import DictTemplates, ScriptedChartApi


def install(monkeypatch: pytest.MonkeyPatch, store: MemoryDocumentStore) -> None:
    runner = compose.build(
        "chart_export",
        environ(),
        stream=io.StringIO(),
        store=store,
        blobs=MemoryBlobStore(),
        templates=DictTemplates(templates()),
        chart_api=ScriptedChartApi(),
        usage=MemoryUsageStore(44, 3000),
        sleep=lambda _s: None,
    )
    monkeypatch.setitem(compose._runners, "chart_export", runner)


def client(target: str, signature_type: str):
    app = functions_framework.create_app(target, str(REPO_ROOT / "entry.py"), signature_type)
    return app.test_client()


def test_on_chart_export_flow_run_updated_runs_the_chart_worker(monkeypatch):
    store = MemoryDocumentStore(documents())
    install(monkeypatch, store)
    headers, body = firestore_update_event(project=PROJECT, run_id=RUN_ID, document=None)

    response = client("on_chart_export_flow_run_updated", "cloudevent").post(
        "/", headers=headers, data=body
    )

    assert response.status_code == 200
    assert (store.document("flow_runs", RUN_ID) or {})["steps"][STEP]["status"] == "SUCCEEDED"


def test_recover_stale_chart_steps_answers_the_scan_summary(monkeypatch):
    install(monkeypatch, MemoryDocumentStore(documents(running())))

    response = client("recover_stale_chart_steps", "http").post("/")

    assert response.status_code == 200
    assert json.loads(response.data) == {
        "runsScanned": 1,
        "stale": 1,
        "recovered": 0,
        "expired": 1,
        "probeFailed": 0,
    }


def test_an_invalid_configuration_fails_every_invocation_without_reading(monkeypatch):
    monkeypatch.delitem(compose._runners, "chart_export", raising=False)
    monkeypatch.delitem(compose._failed, "chart_export", raising=False)
    monkeypatch.setenv("ARTIFACTS_BUCKET", "b")
    monkeypatch.setenv("CHARTS_API_MODE", "real")
    monkeypatch.setenv("CHART_IMG_ACCOUNTS_JSON", '[{"id": "a", "apiKey": "sekrit-value"}, 1]')
    headers, body = firestore_update_event(project=PROJECT, run_id=RUN_ID, document=None)
    sink = io.StringIO()
    monkeypatch.setattr("sys.stdout", sink)
    target = client("on_chart_export_flow_run_updated", "cloudevent")
    assert target.post("/", headers=headers, data=body).status_code == 500
    assert target.post("/", headers=headers, data=body).status_code == 500
    lines = [json.loads(line) for line in sink.getvalue().splitlines() if line.startswith("{")]
    invalid = [line for line in lines if line["event"] == "config_invalid"]
    assert len(invalid) == 1 and invalid[0]["variable"] == "CHART_IMG_ACCOUNTS_JSON[1]"
    assert "sekrit-value" not in sink.getvalue()
    monkeypatch.delitem(compose._failed, "chart_export", raising=False)
