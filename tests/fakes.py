"""Typed test doubles of the worker's ports, shared by every test module.

Each fake implements its Protocol (or overrides its adapter method) with the exact signature, so
mypy — strict for this module — catches a fake that drifted from the interface it stands for:
a fake with a wrong signature would make the code under test fail for the wrong reason.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

from google.api_core import exceptions as gexc

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
    store: FirestoreFlowRunStore | None = None,
) -> tuple[Worker, io.StringIO]:
    """An in-process worker on the emulators, its log captured in the returned buffer."""
    config = WorkerConfig.from_env({"ARTIFACTS_BUCKET": scenario.BUCKET, "GEMINI_API_KEY": "k"})
    sink = io.StringIO()
    ports = Ports(
        store=store if store is not None else store_cls(db, "flow_runs"),
        registry=FirestoreRegistry(db, "llm_prompts", "llm_schemas"),
        blobs=blobs if blobs is not None else GcsBlobStore(gcs),
        llm=llm,
    )
    return Worker(config, ports, EventLogger(env="test", stream=sink)), sink


class StorageDownOnProbe(GcsBlobStore):
    """Cloud Storage answers reads and writes but fails every existence check (a 503, a 403
    from a missing permission, or no route), as the adapter reports all of them."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.probes = 0

    def exists(self, uri: str) -> bool:
        self.probes += 1
        raise StoreUnavailable(ErrorCode.GCS_READ_FAILED, "gcs read failed: ServiceUnavailable")


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps: retry loops bounded by
    a deadline run their full course in no real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class AmbiguousWrites(FirestoreFlowRunStore):
    """Firestore where a step write reaches the database but the client sees an error.

    `landing` writes land and then raise (a lost reply); with `land=False` they raise without
    landing. After the first such write, the next `failing_reads` reads fail (None: all)."""

    def __init__(
        self,
        client: Any,
        clock: FakeClock,
        *,
        land: bool = True,
        landing: int | None = 1,
        failing_reads: int | None = None,
    ) -> None:
        super().__init__(client, "flow_runs", sleep=clock.sleep, clock=clock.monotonic)
        self.land = land
        self.landing = landing
        self.failing_reads = failing_reads
        self.erred_writes = 0
        self.failed_reads = 0

    def _read(self, run_id: str, timeout: float = 10.0) -> Any:
        if self.erred_writes and (
            self.failing_reads is None or self.failed_reads < self.failing_reads
        ):
            self.failed_reads += 1
            raise StoreUnavailable(
                ErrorCode.FIRESTORE_UNAVAILABLE, "firestore read failed: ServiceUnavailable"
            )
        return super()._read(run_id, timeout)

    def _ref(self, run_id: str) -> Any:
        return _ErringRef(super()._ref(run_id), self)


class _ErringRef:
    def __init__(self, ref: Any, owner: AmbiguousWrites) -> None:
        self._ref = ref
        self._owner = owner

    def get(self, **kwargs: Any) -> Any:
        return self._ref.get(**kwargs)

    def update(self, *args: Any, **kwargs: Any) -> Any:
        owner = self._owner
        if owner.landing is not None and owner.erred_writes >= owner.landing:
            return self._ref.update(*args, **kwargs)
        owner.erred_writes += 1
        if owner.land:
            self._ref.update(*args, **kwargs)
        raise gexc.DeadlineExceeded("reply lost")  # type: ignore[no-untyped-call]
