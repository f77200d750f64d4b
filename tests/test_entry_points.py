"""Each entry function of `entry.py`, in this process, through functions-framework's own test
client: the decorated functions reach the worker the composition root builds for the
instance. The runner here is built on in-memory adapters, so no service is involved."""

from __future__ import annotations

import io
import json
from typing import Any

import functions_framework
import pytest

import compose
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from adapters.registries import PromptSchemaRegistry
from devstack import REPO_ROOT
from devstack.cloudevents import firestore_update_event
from states.llm_client.ports import LLMResponse
from tests import scenario
from tests.conftest import PROJECT
from tests.fakes import ENVIRON, ScriptedLLM
from tests.test_llm_lifecycle import documents, objects, running


def install(monkeypatch: pytest.MonkeyPatch, name: str, store: MemoryDocumentStore) -> None:
    runner = compose.build(
        name,
        ENVIRON,
        stream=io.StringIO(),
        store=store,
        registry=PromptSchemaRegistry(store, "llm_prompts", "llm_schemas"),
        blobs=MemoryBlobStore(objects()),
        llm=ScriptedLLM(LLMResponse(text=scenario.report_text(), finish_reason="STOP")),
    )
    monkeypatch.setitem(compose._runners, name, runner)


def client(target: str, signature_type: str) -> Any:
    app = functions_framework.create_app(target, str(REPO_ROOT / "entry.py"), signature_type)
    return app.test_client()


def test_on_flow_run_updated_runs_the_llm_worker(monkeypatch):
    store = MemoryDocumentStore(documents())
    install(monkeypatch, "llm_client", store)
    headers, body = firestore_update_event(project=PROJECT, run_id=scenario.RUN_ID, document=None)

    response = client("on_flow_run_updated", "cloudevent").post("/", headers=headers, data=body)

    assert response.status_code == 200
    step = (store.document("flow_runs", scenario.RUN_ID) or {})["steps"][scenario.STEP]
    assert step["status"] == "SUCCEEDED"


def test_recover_stale_steps_answers_the_scan_summary(monkeypatch):
    store = MemoryDocumentStore(documents(running()))
    install(monkeypatch, "llm_client", store)

    response = client("recover_stale_steps", "http").post("/")

    assert response.status_code == 200
    assert json.loads(response.data) == {
        "runsScanned": 1,
        "stale": 1,
        "recovered": 0,
        "expired": 1,
        "probeFailed": 0,
    }
