"""Typed test doubles of the worker's ports, shared by every test module.

Each fake implements its Protocol (or overrides its adapter method) with the exact signature, so
mypy — strict for this module — catches a fake that drifted from the interface it stands for:
a fake with a wrong signature would make the code under test fail for the wrong reason.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

from adapters.firestore import FirestoreFlowRunStore, FirestoreRegistry
from adapters.gcs import GcsBlobStore
from engine.config import WorkerConfig
from engine.errors import ErrorCode, StoreUnavailable
from engine.log import EventLogger
from engine.ports import LLM, GuardedWrite, LLMRequest, LLMResponse, Ports, Snapshot
from engine.runner import Worker
from tests import scenario


class ExplodingLLM:
    """A model call that must never happen; if it does, the step fails visibly."""

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        raise RuntimeError("secret-looking detail that must not be stored")


class GoodLLM:
    """Answers every request with the scenario's valid report."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        self.calls += 1
        return LLMResponse(text=scenario.report_text(), finish_reason="STOP")


class FinalizeDown(FirestoreFlowRunStore):
    """Firestore answers reads and the claim, then is unavailable for the finalize."""

    def update_step(
        self,
        run_id: str,
        step_id: str,
        expect: str,
        patch: dict[str, Any],
        also: dict[str, Any] | None = None,
    ) -> GuardedWrite:
        if expect == "RUNNING":
            raise StoreUnavailable(
                ErrorCode.FIRESTORE_UNAVAILABLE, "firestore write failed: ServiceUnavailable"
            )
        return super().update_step(run_id, step_id, expect, patch, also)


class FinalizeExplodes(FirestoreFlowRunStore):
    """A bug of ours in the finalize path (not a Firestore fault)."""

    def update_step(
        self,
        run_id: str,
        step_id: str,
        expect: str,
        patch: dict[str, Any],
        also: dict[str, Any] | None = None,
    ) -> GuardedWrite:
        if expect == "RUNNING":
            raise RuntimeError("bug in finalize")
        return super().update_step(run_id, step_id, expect, patch, also)


class CountingStore(FirestoreFlowRunStore):
    """Counts flow run loads, to prove which events are decided without reading Firestore."""

    loads: ClassVar[int] = 0

    def load(self, run_id: str) -> Snapshot | None:
        type(self).loads += 1
        return super().load(run_id)


def worker(
    db: Any,
    gcs: Any,
    llm: LLM,
    store_cls: type[FirestoreFlowRunStore] = FirestoreFlowRunStore,
    blobs: Any = None,
) -> tuple[Worker, io.StringIO]:
    """An in-process worker on the emulators, its log captured in the returned buffer."""
    config = WorkerConfig.from_env({"ARTIFACTS_BUCKET": scenario.BUCKET, "GEMINI_API_KEY": "k"})
    sink = io.StringIO()
    ports = Ports(
        store=store_cls(db, "flow_runs"),
        registry=FirestoreRegistry(db, "llm_prompts", "llm_schemas"),
        blobs=blobs if blobs is not None else GcsBlobStore(gcs),
        llm=llm,
    )
    return Worker(config, ports, EventLogger(env="test", stream=sink)), sink
