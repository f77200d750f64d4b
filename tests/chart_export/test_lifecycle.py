"""Every path through the CHART_EXPORT lifecycle, in memory: the fast layer of the suite.

The worker is built by the composition root on in-memory adapters and typed fakes of its ports
(no emulator, no stub, no process; waits are recorded, not slept), and each scenario drives one
path. The last test replays them all and proves that together they take every edge of the
table, error exits included, so a state or an edge added without a scenario fails here.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest

import compose
from adapters.chart_usage import MemoryUsageStore
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from engine.cloudevent import Event
from engine.errors import Shared, StoreUnavailable, WriteOutcomeUnknown
from engine.runner import Outcome, Stranded
from engine.unit import Unit
from states.chart_export.chart_api import ChartAttempt
from states.chart_export.table import LIFECYCLE
from tests import scenario
from tests.contracts import CONTRACTS, load
from tests.fakes import (
    ChartBlobs,
    ClaimAdvancesClock,
    DictTemplates,
    ExplodingChartApi,
    FakeClock,
    FaultyStore,
    FinalizedElsewhere,
    ScriptedChartApi,
)

RUN_ID = "20251215-102530_BTCUSDT_k3f7a"
STEP = "charts:1M:price_pair_v1"
MA = "ctpl_price_ma1226_vol_v1"
RSI = "ctpl_price_rsi14_stochrsi_v1"
MACD = "ctpl_price_ma1226_bb_macd1226_v1"
PSAR = "ctpl_price_psar_adi_v1"
BUCKET = "artifacts-bucket"
FOLDER = f"gs://{BUCKET}/charts/{RUN_ID}/{STEP}/"
MANIFEST = FOLDER + "manifest.json"
STATUS = ("steps", STEP, "status")
KEYS = {"acc-1": "test-only-not-a-real-key-acc-1", "acc-2": "test-only-not-a-real-key-acc-2"}
PNG = scenario.png(4, 3, (9, 9, 9))
OK = ChartAttempt("ok", 200, png=PNG)
EVENT = Event("e1", "google.cloud.firestore.document.v1.updated", f"documents/flow_runs/{RUN_ID}")
PATCH_SCHEMA = load("chart_export/chart_export_finalize_patch.schema.json")
MANIFEST_SCHEMA = load("chart_export/charts_outputs_manifest.schema.json")


def png_uri(template_id: str) -> str:
    return f"{FOLDER}BTCUSDT_1M_{template_id}.png"


def environ(accounts: int = 2, **extra: str) -> dict[str, str]:
    return {
        "ARTIFACTS_BUCKET": BUCKET,
        "ENV": "test",
        "CHARTS_API_MODE": "real",
        "CHART_IMG_PLAN": "ULTRA",
        "CHART_IMG_BACKOFF_BASE_SECONDS": "0.01",
        "CHART_IMG_BACKOFF_MAX_SECONDS": "0.05",
        "CHART_IMG_ACCOUNTS_JSON": json.dumps(
            [{"id": i, "apiKey": k, "dailyLimit": 44} for i, k in list(KEYS.items())[:accounts]]
        ),
        **extra,
    }


def templates() -> dict[str, Any]:
    folder = CONTRACTS / "chart_export" / "chart-templates"
    return {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}


def flow_run(
    requests: tuple[str, ...] = (MA, RSI),
    min_images: Any = 2,
    status: str = "READY",
    timeframe: str = "1M",
    started_at: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(
        load("chart_export/test_vectors/cases/happy_path_two_requests.json")["firestore"][
            f"flow_runs/{RUN_ID}"
        ]
    )
    step = doc["steps"][STEP]
    step.update(status=status, timeframe=timeframe)
    step["inputs"] = {"requests": [{"chartTemplateId": t} for t in requests]}
    if min_images is not None:
        step["inputs"]["minImages"] = min_images
    if started_at is not None:
        step["outputs"] = {"execution": {"timing": {"startedAt": started_at}}}
    return doc


def running(**kwargs: Any) -> dict[str, Any]:
    return flow_run(status="RUNNING", started_at="2025-12-15T10:00:00.000001Z", **kwargs)


def documents(doc: dict[str, Any] | None = None) -> dict[str, Any]:
    return {f"flow_runs/{RUN_ID}": doc if doc is not None else flow_run()}


def manifest(step_id: str = STEP, items: int = 2, min_images: int = 2) -> bytes:
    base = load("chart_export/test_vectors/expected_manifest.json")
    item = {
        "chartTemplateId": MA,
        "kind": "price",
        "generatedAt": "2025-12-15T10:26:05Z",
        "png_gcs_uri": png_uri(MA),
    }
    body = {
        **base,
        "runId": RUN_ID,
        "stepId": step_id,
        "minImages": min_images,
        "items": [item] * items,
        "failures": [],
    }
    return json.dumps(body).encode()


@dataclass
class Result:
    outcome: Outcome | None
    units: list[Unit[Any, Any, Any]]
    store: MemoryDocumentStore
    blobs: MemoryBlobStore
    api: Any
    usage: MemoryUsageStore | None
    sleeps: list[float]
    log: str
    scan: dict[str, int] | None = None

    @property
    def step(self) -> dict[str, Any]:
        stored = self.store.document("flow_runs", RUN_ID) or {}
        step: dict[str, Any] = stored["steps"][STEP]
        return step

    @property
    def execution(self) -> dict[str, Any]:
        execution: dict[str, Any] = self.step["outputs"]["execution"]
        return execution

    @property
    def requests(self) -> list[dict[str, Any]]:
        requests: list[dict[str, Any]] = self.execution["chartImg"]["requests"]
        return requests

    @property
    def edges(self) -> set[tuple[str, str, str]]:
        return {edge for unit in self.units for edge in unit.trail}

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log.splitlines()]
        return [line for line in lines if line.get("event") == name]

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.blobs.read(MANIFEST, 65536))
        return data


@dataclass
class Setup:
    store: MemoryDocumentStore | None = None
    blobs: MemoryBlobStore | None = None
    api: Any = None
    usage: MemoryUsageStore | None = None
    templates: DictTemplates | None = None
    env: dict[str, str] = field(default_factory=environ)
    scan_lease: float | None = None
    clock: FakeClock | None = None
    ports: dict[str, Any] = field(default_factory=dict)  # more port overrides


def run(setup: Setup | None = None, **kwargs: Any) -> Result:
    setup = setup or Setup(**kwargs)
    store = setup.store or MemoryDocumentStore(documents())
    blobs = setup.blobs or MemoryBlobStore()
    api = setup.api or ScriptedChartApi()
    usage = setup.usage or MemoryUsageStore(44, 3000)
    units: list[Unit[Any, Any, Any]] = []
    sleeps: list[float] = []
    sink = io.StringIO()
    extra: dict[str, Any] = dict(setup.ports)
    if setup.clock is not None:
        extra["monotonic"] = setup.clock.monotonic
    runner = compose.build(
        "chart_export",
        setup.env,
        stream=sink,
        level="DEBUG",
        observe=units.append,
        store=store,
        blobs=blobs,
        templates=setup.templates or DictTemplates(templates()),
        chart_api=api,
        usage=usage,
        sleep=sleeps.append,
        **extra,
    )
    outcome: Outcome | None = None
    scanned = None
    if setup.scan_lease is not None:
        scanned = runner.scan(setup.scan_lease)
    else:
        try:
            outcome = runner.handle(EVENT)
        except Stranded:
            outcome = None
    return Result(outcome, units, store, blobs, api, usage, sleeps, sink.getvalue(), scanned)


def attempt(kind: Any, status: int | None, **extra: Any) -> ChartAttempt:
    return ChartAttempt(kind, status, **extra)


SCENARIOS: dict[str, Callable[[], Result]] = {
    # --- the step's own work
    "success": lambda: run(),
    "invalid_inputs": lambda: run(store=MemoryDocumentStore(documents(flow_run(timeframe="2w")))),
    "templates_explode": lambda: run(templates=DictTemplates(templates(), exploding=True)),
    "preflight_shortfall": lambda: run(
        store=MemoryDocumentStore(documents(flow_run(requests=(MA, "ctpl_missing_v1"))))
    ),
    "render_explodes": lambda: run(api=ExplodingChartApi()),
    "renders_fall_short": lambda: run(
        api=ScriptedChartApi({RSI: [attempt("server_error", 504)] * 3})
    ),
    "pngs_explode": lambda: run(blobs=ChartBlobs(create_fails=".png", bug=True)),
    "png_write_fails": lambda: run(blobs=ChartBlobs(create_fails=f"{RSI}.png")),
    "manifest_write_fails": lambda: run(blobs=ChartBlobs(create_fails="manifest.json")),
    "manifest_write_conflict": lambda: run(blobs=ChartBlobs(appears={MANIFEST: manifest()})),
    # --- claim
    "claim_lost": lambda: run(store=FaultyStore(documents(), interfere={STATUS: "RUNNING"})),
    "claim_unknown": lambda: run(
        store=FaultyStore(
            documents(), claim_fault=WriteOutcomeUnknown(Shared.FIRESTORE_UNAVAILABLE, "unknown")
        )
    ),
    "claim_unavailable": lambda: run(
        store=FaultyStore(
            documents(), claim_fault=StoreUnavailable(Shared.FIRESTORE_UNAVAILABLE, "down")
        )
    ),
    # --- a manifest already there, after our claim
    "manifest_there_after_claim": lambda: run(blobs=MemoryBlobStore({MANIFEST: manifest()})),
    "foreign_manifest_after_claim": lambda: run(
        blobs=MemoryBlobStore({MANIFEST: manifest(step_id="charts:1M:other_v1")})
    ),
    "owned_probe_out_of_time": lambda: run(
        Setup(
            store=ClaimAdvancesClock(documents(), clock := FakeClock(), seconds=600.0),
            clock=clock,
        )
    ),
    "owned_adopt_fails": lambda: run(blobs=ChartBlobs({MANIFEST: manifest()}, read_fails=True)),
    # --- a RUNNING step met by an event or by recovery
    "split_brain": lambda: run(
        store=MemoryDocumentStore(documents(running())),
        blobs=MemoryBlobStore({MANIFEST: manifest()}),
    ),
    "running_alive": lambda: run(store=MemoryDocumentStore(documents(running()))),
    "foreign_probe_fails": lambda: run(
        store=MemoryDocumentStore(documents(running())), blobs=ChartBlobs(exists_fails=True)
    ),
    "foreign_adopt_fails": lambda: run(
        store=MemoryDocumentStore(documents(running())),
        blobs=ChartBlobs({MANIFEST: manifest()}, read_fails=True),
    ),
    "lease_expired": lambda: run(store=MemoryDocumentStore(documents(running())), scan_lease=60.0),
    # --- the finalize
    "finalize_skipped": lambda: run(store=FinalizedElsewhere(documents(), status=STATUS)),
    "finalize_stranded": lambda: run(
        store=FaultyStore(
            documents(), finalize_fault=StoreUnavailable(Shared.FIRESTORE_UNAVAILABLE, "down")
        )
    ),
}

EXPECTED: dict[str, tuple[str, str | None]] = {
    "success": ("SUCCEEDED", None),
    "invalid_inputs": ("FAILED", "INVALID_STEP_INPUTS"),
    "templates_explode": ("FAILED", "WORKER_INTERNAL_ERROR"),
    "preflight_shortfall": ("FAILED", "CHART_TEMPLATE_NOT_FOUND"),
    "render_explodes": ("FAILED", "WORKER_INTERNAL_ERROR"),
    "renders_fall_short": ("FAILED", "CHART_API_FAILED"),
    "pngs_explode": ("FAILED", "WORKER_INTERNAL_ERROR"),
    "png_write_fails": ("FAILED", "GCS_WRITE_FAILED"),
    "manifest_write_fails": ("FAILED", "MANIFEST_WRITE_FAILED"),
    "manifest_write_conflict": ("SUCCEEDED", None),
    "claim_lost": ("RUNNING", None),
    "claim_unknown": ("READY", None),
    "claim_unavailable": ("READY", None),
    "manifest_there_after_claim": ("SUCCEEDED", None),
    "foreign_manifest_after_claim": ("FAILED", "MANIFEST_INVALID"),
    "owned_probe_out_of_time": ("FAILED", "TIME_BUDGET_EXCEEDED"),
    "owned_adopt_fails": ("FAILED", "MANIFEST_WRITE_FAILED"),
    "split_brain": ("SUCCEEDED", None),
    "running_alive": ("RUNNING", None),
    "foreign_probe_fails": ("RUNNING", None),
    "foreign_adopt_fails": ("RUNNING", None),
    "lease_expired": ("FAILED", "STEP_LEASE_EXPIRED"),
    "finalize_skipped": ("FAILED", None),
    "finalize_stranded": ("RUNNING", None),
}


def code(result: Result) -> str | None:
    return (result.step.get("error") or {}).get("code")


def finalize_patches(result: Result) -> list[dict[str, Any]]:
    return [
        w["fields"]
        for w in result.store.writes
        if any(k.endswith("finishedAt") for k in w["fields"])
    ]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_path_ends_as_the_spec_says(name: str):
    result = SCENARIOS[name]()
    status, expected_code = EXPECTED[name]
    assert (result.step["status"], code(result)) == (status, expected_code)
    for flag in ('"uncatalogued"', '"payloadRejected"', '"missingFields"'):
        assert flag not in result.log, name
    for patch in finalize_patches(result):  # every finalize is the §11 patch, field for field
        jsonschema.validate(patch, PATCH_SCHEMA)
    for secret in KEYS.values():
        assert secret not in result.log
        assert secret not in json.dumps(result.store.writes)


def test_the_chart_api_is_called_only_where_it_must_be():
    calls = {
        name: len(SCENARIOS[name]().api.calls) for name in SCENARIOS if name != "render_explodes"
    }
    assert {name for name, n in calls.items() if n} == {
        "success",
        "renders_fall_short",
        "pngs_explode",
        "png_write_fails",
        "manifest_write_fails",
        "manifest_write_conflict",
        "finalize_skipped",
        "finalize_stranded",
    }


def test_together_the_scenarios_take_every_edge_of_the_table():
    taken = set().union(*(SCENARIOS[name]().edges for name in SCENARIOS))
    assert LIFECYCLE.untaken(taken) == []
