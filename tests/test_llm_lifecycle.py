"""Every path through the LLM_REPORT lifecycle, in memory: the fast layer of the suite.

The worker is built by the composition root on in-memory adapters and typed fakes of its ports
(no emulator, no stub, no process), and each scenario drives one path. The last test replays
them all and proves that together they take every edge of the table, error exits included, so
a state added without a scenario fails here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import compose
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from adapters.registries import PromptSchemaRegistry
from engine.cloudevent import Event
from engine.errors import Shared, StoreUnavailable, WriteOutcomeUnknown
from engine.runner import Outcome, Stranded
from engine.unit import Unit
from states.llm_client.ports import LLMCallFailed, LLMResponse
from states.llm_client.table import LIFECYCLE
from tests import scenario
from tests.contracts import load
from tests.fakes import ENVIRON, FaultyBlobs, FaultyStore, FinalizedElsewhere, ScriptedLLM

STEP = scenario.STEP
REPORT_URI = scenario.ARTIFACT_URI
STEP_STATUS = ("steps", STEP, "status")
OK = LLMResponse(text=scenario.report_text(), finish_reason="STOP")
BROKEN = LLMResponse(text='{"summary": 1', finish_reason="MAX_TOKENS")
EVENT = Event(
    "e1", "google.cloud.firestore.document.v1.updated", f"documents/flow_runs/{scenario.RUN_ID}"
)


def documents(doc: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        f"flow_runs/{scenario.RUN_ID}": doc or scenario.flow_run(),
        f"llm_prompts/{scenario.PROMPT_ID}": load("examples/llm_prompt.example.json"),
        f"llm_schemas/{scenario.SCHEMA_ID}": load("examples/llm_schema.example.json"),
    }


def objects(**extra: bytes) -> dict[str, bytes]:
    steps = scenario.flow_run()["steps"]
    found = {
        steps[scenario.OHLCV_STEP]["outputs"]["gcs_uri"]: json.dumps(scenario.OHLCV).encode(),
        steps[scenario.CHARTS_STEP]["outputs"]["gcs_uri"]: json.dumps(scenario.manifest()).encode(),
        **scenario.CHART_PNGS,
    }
    return {**found, **{uri.replace("|", "/"): data for uri, data in extra.items()}}


def own_report(step_id: str = STEP) -> bytes:
    report = load("examples/llm_report_file.example.json")
    report["metadata"]["stepId"] = step_id
    return json.dumps(report).encode()


def running(started_at: str = "2026-01-01T00:00:00.000001Z") -> dict[str, Any]:
    doc = scenario.flow_run()
    doc["steps"][STEP]["status"] = "RUNNING"
    doc["steps"][STEP]["outputs"] = {"execution": {"timing": {"startedAt": started_at}}}
    return doc


@dataclass
class Result:
    outcome: Outcome | None
    units: list[Unit[Any, Any, Any]]
    store: MemoryDocumentStore
    llm: ScriptedLLM
    log: str

    @property
    def step(self) -> dict[str, Any]:
        stored = self.store.document("flow_runs", scenario.RUN_ID) or {}
        step: dict[str, Any] = stored["steps"][STEP]
        return step

    @property
    def edges(self) -> set[tuple[str, str, str]]:
        return {edge for unit in self.units for edge in unit.trail}


def run(
    store: MemoryDocumentStore | None = None,
    blobs: MemoryBlobStore | None = None,
    llm: ScriptedLLM | None = None,
    scan_lease: float | None = None,
) -> Result:
    store = store or MemoryDocumentStore(documents())
    units: list[Unit[Any, Any, Any]] = []
    sink = io.StringIO()
    model = llm or ScriptedLLM()
    runner = compose.build(
        "llm_client",
        ENVIRON,
        stream=sink,
        observe=units.append,
        store=store,
        registry=PromptSchemaRegistry(store, "llm_prompts", "llm_schemas"),
        blobs=blobs or MemoryBlobStore(objects()),
        llm=model,
    )
    outcome: Outcome | None = None
    if scan_lease is not None:
        runner.scan(scan_lease)
    else:
        try:
            outcome = runner.handle(EVENT)
        except Stranded:
            outcome = None
    return Result(outcome, units, store, model, sink.getvalue())


def claim_fault(fault: StoreUnavailable) -> FaultyStore:
    return FaultyStore(documents(), claim_fault=fault)


SCENARIOS: dict[str, Callable[[], Result]] = {
    "success": lambda: run(llm=ScriptedLLM(OK)),
    "repaired": lambda: run(llm=ScriptedLLM(BROKEN, OK)),
    "invalid_twice": lambda: run(llm=ScriptedLLM(BROKEN, BROKEN)),
    "safety_block": lambda: run(llm=ScriptedLLM(LLMResponse(text=None, finish_reason="SAFETY"))),
    "model_fault": lambda: run(llm=ScriptedLLM(LLMCallFailed("rate_limited", 429))),
    "prompt_missing": lambda: run(
        store=MemoryDocumentStore(
            {k: v for k, v in documents().items() if not k.startswith("llm_prompts")}
        )
    ),
    "ohlcv_missing": lambda: run(
        blobs=MemoryBlobStore({k: v for k, v in objects().items() if "ohlcv" not in k})
    ),
    "write_fails": lambda: run(
        blobs=FaultyBlobs(objects(), create_fails=True), llm=ScriptedLLM(OK)
    ),
    "claim_lost": lambda: run(store=FaultyStore(documents(), interfere={STEP_STATUS: "RUNNING"})),
    "claim_unknown": lambda: run(
        store=claim_fault(WriteOutcomeUnknown(Shared.FIRESTORE_UNAVAILABLE, "unknown"))
    ),
    "claim_unavailable": lambda: run(
        store=claim_fault(StoreUnavailable(Shared.FIRESTORE_UNAVAILABLE, "down"))
    ),
    "report_there_after_claim": lambda: run(
        blobs=MemoryBlobStore({**objects(), REPORT_URI: own_report()})
    ),
    "foreign_object_after_claim": lambda: run(
        blobs=MemoryBlobStore({**objects(), REPORT_URI: own_report("another_step")})
    ),
    "owned_probe_fails": lambda: run(blobs=FaultyBlobs(objects(), exists_fails=True)),
    "owned_adopt_fails": lambda: run(
        blobs=FaultyBlobs({**objects(), REPORT_URI: own_report()}, read_fails=REPORT_URI)
    ),
    "split_brain": lambda: run(
        store=MemoryDocumentStore(documents(running())),
        blobs=MemoryBlobStore({**objects(), REPORT_URI: own_report()}),
    ),
    "running_alive": lambda: run(store=MemoryDocumentStore(documents(running()))),
    "foreign_probe_fails": lambda: run(
        store=MemoryDocumentStore(documents(running())),
        blobs=FaultyBlobs(objects(), exists_fails=True),
    ),
    "foreign_adopt_fails": lambda: run(
        store=MemoryDocumentStore(documents(running())),
        blobs=FaultyBlobs({**objects(), REPORT_URI: own_report()}, read_fails=REPORT_URI),
    ),
    "lease_expired": lambda: run(store=MemoryDocumentStore(documents(running())), scan_lease=60.0),
    "finalize_skipped": lambda: run(
        store=FinalizedElsewhere(documents(), status=STEP_STATUS), llm=ScriptedLLM(OK)
    ),
    "finalize_stranded": lambda: run(
        store=FaultyStore(
            documents(),
            finalize_fault=StoreUnavailable(Shared.FIRESTORE_UNAVAILABLE, "down"),
        ),
        llm=ScriptedLLM(OK),
    ),
}


def code(result: Result) -> str | None:
    return (result.step.get("error") or {}).get("code")


EXPECTED: dict[str, tuple[str, str | None]] = {
    "success": ("SUCCEEDED", None),
    "repaired": ("SUCCEEDED", None),
    "invalid_twice": ("FAILED", "INVALID_STRUCTURED_OUTPUT"),
    "safety_block": ("FAILED", "LLM_SAFETY_BLOCK"),
    "model_fault": ("FAILED", "RATE_LIMITED"),
    "prompt_missing": ("FAILED", "PROMPT_NOT_FOUND"),
    "ohlcv_missing": ("FAILED", "INVALID_STEP_INPUTS"),
    "write_fails": ("FAILED", "GCS_WRITE_FAILED"),
    "claim_lost": ("RUNNING", None),
    "claim_unknown": ("READY", None),
    "claim_unavailable": ("READY", None),
    "report_there_after_claim": ("SUCCEEDED", None),
    "foreign_object_after_claim": ("FAILED", "ARTIFACT_INVALID"),
    "owned_probe_fails": ("FAILED", "GCS_READ_FAILED"),
    "owned_adopt_fails": ("FAILED", "GCS_READ_FAILED"),
    "split_brain": ("SUCCEEDED", None),
    "running_alive": ("RUNNING", None),
    "foreign_probe_fails": ("RUNNING", None),
    "foreign_adopt_fails": ("RUNNING", None),
    "lease_expired": ("FAILED", "STEP_LEASE_EXPIRED"),
    "finalize_skipped": ("FAILED", None),
    "finalize_stranded": ("RUNNING", None),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_path_ends_as_the_spec_says(name: str):
    result = SCENARIOS[name]()
    status, expected_code = EXPECTED[name]
    assert (result.step["status"], code(result)) == (status, expected_code)
    assert '"uncatalogued"' not in result.log and '"payloadRejected"' not in result.log


def test_the_model_is_called_only_where_it_must_be():
    calls = {name: len(SCENARIOS[name]().llm.requests) for name in SCENARIOS}
    assert {name for name, n in calls.items() if n} == {
        "success",
        "repaired",
        "invalid_twice",
        "safety_block",
        "model_fault",
        "write_fails",
        "finalize_skipped",
        "finalize_stranded",
    }
    assert calls["repaired"] == calls["invalid_twice"] == 2


def test_an_unknown_claim_is_never_reported_as_not_claimed():
    result = SCENARIOS["claim_unknown"]()
    assert result.outcome is not None
    assert (result.outcome.status, result.outcome.reason) == ("failed", "claim_outcome_unknown")
    assert '"claim_outcome_unknown"' in result.log


def test_together_the_scenarios_take_every_edge_of_the_table():
    taken = set().union(*(SCENARIOS[name]().edges for name in SCENARIOS))
    assert LIFECYCLE.untaken(taken) == []
