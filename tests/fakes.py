"""Typed test doubles of the worker's ports, shared by every test module.

Each fake implements its Protocol (or overrides its adapter method) with the exact signature, so
mypy — strict for this module — catches a fake that drifted from the interface it stands for:
a fake with a wrong signature would make the code under test fail for the wrong reason.
"""

from __future__ import annotations

import copy
import io
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc

import compose
from adapters.chart_usage import MemoryUsageStore
from adapters.firestore import FirestoreDocumentStore, FirestoreRegistry
from adapters.gcs import GcsBlobStore
from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from adapters.registries import PromptSchemaRegistry
from engine.errors import Shared, StoreUnavailable
from engine.ports import Gate, GuardedWrite, JsonObject, Patch, Path, Snapshot
from engine.runner import Runner
from states.chart_export.chart_api import Account, ChartAttempt, ChartRequest
from states.chart_export.usage import Contended, Reservation, Reserved
from states.llm_client.ports import LLM, LLMCallFailed, LLMRequest, LLMResponse
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


def is_finalize(patch: Mapping[Path, Any]) -> bool:
    return any(path[-1] == "finishedAt" for path in patch)


class FinalizeDown(FirestoreDocumentStore):
    """Firestore answers reads and the claim, then is unavailable for the finalize."""

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        if is_finalize(patch):
            raise StoreUnavailable(
                Shared.FIRESTORE_UNAVAILABLE, "firestore write failed: ServiceUnavailable"
            )
        return super().update(collection, doc_id, patch, gate, timeout_s)


class FinalizeExplodes(FirestoreDocumentStore):
    """A bug of ours in the finalize path (not a Firestore fault)."""

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        if is_finalize(patch):
            raise RuntimeError("bug in finalize")
        return super().update(collection, doc_id, patch, gate, timeout_s)


ENVIRON = {"ARTIFACTS_BUCKET": scenario.BUCKET, "GEMINI_API_KEY": "k"}


def worker(
    db: Any,
    gcs: Any,
    llm: LLM,
    store_cls: type[FirestoreDocumentStore] = FirestoreDocumentStore,
    blobs: Any = None,
    store: FirestoreDocumentStore | None = None,
) -> tuple[Runner[Any, Any, Any], io.StringIO]:
    """The LLM worker in this process on the emulators (the test's own clients), built by the
    composition root like every other caller; its log is captured in the returned buffer."""
    sink = io.StringIO()
    runner = compose.build(
        "llm_client",
        ENVIRON,
        stream=sink,
        store=store if store is not None else store_cls(None, "(default)", given=db),
        registry=PromptSchemaRegistry(
            FirestoreRegistry(None, "(default)", given=db), "llm_prompts", "llm_schemas"
        ),
        blobs=blobs if blobs is not None else GcsBlobStore(given=gcs),
        llm=llm,
    )
    return runner, sink


class StorageDownOnProbe(GcsBlobStore):
    """Cloud Storage answers reads and writes but fails every existence check (a 503, a 403
    from a missing permission, or no route), as the adapter reports all of them."""

    def __init__(self, client: Any) -> None:
        super().__init__(given=client)
        self.probes = 0

    def exists(self, uri: str) -> bool:
        self.probes += 1
        raise StoreUnavailable(Shared.GCS_READ_FAILED, "gcs read failed: ServiceUnavailable")


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps: retry loops bounded by
    a deadline run their full course in no real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class AmbiguousWrites(FirestoreDocumentStore):
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
        super().__init__(None, "(default)", given=client, sleep=clock.sleep, clock=clock.monotonic)
        self.land = land
        self.landing = landing
        self.failing_reads = failing_reads
        self.erred_writes = 0
        self.failed_reads = 0

    def _read(self, collection: str, doc_id: str, timeout: float = 10.0) -> Any:
        if self.erred_writes and (
            self.failing_reads is None or self.failed_reads < self.failing_reads
        ):
            self.failed_reads += 1
            raise StoreUnavailable(
                Shared.FIRESTORE_UNAVAILABLE, "firestore read failed: ServiceUnavailable"
            )
        return super()._read(collection, doc_id, timeout)

    def _ref(self, collection: str, doc_id: str) -> Any:
        return _ErringRef(super()._ref(collection, doc_id), self)


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


# --- typed fakes for the in-memory suite (no services) ------------------------------------------


class ScriptedLLM:
    """Answers each call with the next scripted response, or raises the scripted fault."""

    def __init__(self, *script: LLMResponse | LLMCallFailed) -> None:
        self.script = list(script)
        self.requests: list[LLMRequest] = []

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        self.requests.append(request)
        reply = self.script.pop(0)
        if isinstance(reply, LLMCallFailed):
            raise reply
        return reply


class FaultyStore(MemoryDocumentStore):
    """In-memory Firestore with one fault where a test puts it: on the claim write (outcome
    unknown, or unavailable), on the finalize write, or someone else's write just before ours
    (`interfere`: the fields another actor sets first)."""

    def __init__(
        self,
        documents: Mapping[str, JsonObject],
        *,
        claim_fault: StoreUnavailable | None = None,
        finalize_fault: Exception | None = None,
        interfere: Mapping[Path, Any] | None = None,
    ) -> None:
        super().__init__(documents)
        self.claim_fault = claim_fault
        self.finalize_fault = finalize_fault
        self.interfere = dict(interfere or {})

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        if self.interfere:
            interference, self.interfere = self.interfere, {}
            super().update(collection, doc_id, interference, lambda _data: None, timeout_s)
        if self.claim_fault is not None and not is_finalize(patch):
            raise self.claim_fault
        if self.finalize_fault is not None and is_finalize(patch):
            raise self.finalize_fault
        return super().update(collection, doc_id, patch, gate, timeout_s)


class FaultyBlobs(MemoryBlobStore):
    """In-memory Cloud Storage failing the way a test says: existence checks, reads of one
    object, or every create."""

    def __init__(
        self,
        objects: Mapping[str, bytes],
        *,
        exists_fails: bool = False,
        read_fails: str | None = None,
        create_fails: bool = False,
    ) -> None:
        super().__init__(objects)
        self.exists_fails = exists_fails
        self.read_fails = read_fails
        self.create_fails = create_fails

    def exists(self, uri: str) -> bool:
        if self.exists_fails:
            raise StoreUnavailable(Shared.GCS_READ_FAILED, "gcs read failed: Forbidden")
        return super().exists(uri)

    def read(self, uri: str, limit: int) -> bytes:
        if uri == self.read_fails:
            raise StoreUnavailable(Shared.GCS_READ_FAILED, "gcs read failed: ServiceUnavailable")
        return super().read(uri, limit)

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        if self.create_fails:
            raise StoreUnavailable(Shared.GCS_WRITE_FAILED, "gcs write failed: ServiceUnavailable")
        return super().create(uri, data, content_type)


class FinalizedElsewhere(MemoryDocumentStore):
    """The orchestrator (or a twin) ends the unit (`status` set to FAILED) between our work
    and our finalize, so the finalize's gate refuses."""

    def __init__(self, documents: Mapping[str, JsonObject], *, status: Path) -> None:
        super().__init__(documents)
        self.status = status

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        if is_finalize(patch):
            super().update(collection, doc_id, {self.status: "FAILED"}, lambda _: None, timeout_s)
        return super().update(collection, doc_id, patch, gate, timeout_s)


# --- typed fakes of the CHART_EXPORT worker's ports ---------------------------------------------


class ScriptedChartApi:
    """Chart-IMG answering from a script per template id (the next entry per attempt), else
    with `default`; every call is recorded as (template id, account id or None)."""

    def __init__(
        self,
        script: Mapping[str, list[ChartAttempt]] | None = None,
        default: ChartAttempt | None = None,
    ) -> None:
        self.script = {key: list(value) for key, value in (script or {}).items()}
        self.default = default or ChartAttempt("ok", 200, png=scenario.png(4, 3, (9, 9, 9)))
        self.calls: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    def render(
        self, request: ChartRequest, account: Account | None, timeout_s: float
    ) -> ChartAttempt:
        with self._lock:
            self.calls.append((request.chart_template_id, account.id if account else None))
            queue = self.script.get(request.chart_template_id)
            return queue.pop(0) if queue else self.default


class ExplodingChartApi:
    """A bug of ours (or of a library) inside an attempt."""

    def render(
        self, request: ChartRequest, account: Account | None, timeout_s: float
    ) -> ChartAttempt:
        raise RuntimeError("unexpected failure inside the chart client")


class DictTemplates:
    """Template documents in memory; `failing` ids raise as an unreachable Firestore does,
    `exploding` ones as a bug would. `reads` counts the reads (the cache keeps valid ones)."""

    def __init__(
        self,
        documents: Mapping[str, JsonObject],
        *,
        failing: frozenset[str] = frozenset(),
        exploding: bool = False,
    ) -> None:
        self.documents = dict(documents)
        self.failing = failing
        self.exploding = exploding
        self.reads: list[str] = []

    def template(self, template_id: str) -> JsonObject | None:
        self.reads.append(template_id)
        if self.exploding:
            raise RuntimeError("bug in the template source")
        if template_id in self.failing:
            raise StoreUnavailable(Shared.FIRESTORE_UNAVAILABLE, "firestore read failed: Timeout")
        found = self.documents.get(template_id)
        return copy.deepcopy(found) if found is not None else None


class FaultyUsage(MemoryUsageStore):
    """Reservations in memory with faults per account: `contended` accounts always lose the
    race, `unavailable` ones cannot be reached; `exhaust_fails` makes every `mark_exhausted`
    fail (True: contended; an exception: raised)."""

    def __init__(
        self,
        default_limit: int,
        plan_max: int,
        documents: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        contended: frozenset[str] = frozenset(),
        unavailable: frozenset[str] = frozenset(),
        exhaust_fails: bool | StoreUnavailable = False,
    ) -> None:
        super().__init__(default_limit, plan_max, documents)
        self.contended = contended
        self.unavailable = unavailable
        self.exhaust_fails = exhaust_fails
        self.reservations: list[str] = []

    def reserve(self, account_id: str, secret_limit: int | None, now: datetime) -> Reservation:
        if account_id in self.unavailable:
            raise StoreUnavailable(Shared.FIRESTORE_UNAVAILABLE, "firestore read failed: Timeout")
        if account_id in self.contended:
            return Contended(attempts=5)
        outcome = super().reserve(account_id, secret_limit, now)
        if isinstance(outcome, Reserved):
            self.reservations.append(account_id)
        return outcome

    def mark_exhausted(self, account_id: str, secret_limit: int | None, now: datetime) -> bool:
        if isinstance(self.exhaust_fails, StoreUnavailable):
            raise self.exhaust_fails
        if self.exhaust_fails:
            return False
        return super().mark_exhausted(account_id, secret_limit, now)


class ChartBlobs(MemoryBlobStore):
    """In-memory Cloud Storage for the chart worker's paths: creates of names ending in
    `create_fails` fail (`times` times; None: always, `bug`: as a defect would), lookups of
    creation times fail when `created_fails`, and `appears` objects show up just before our
    first create of them (a twin wrote them after our probe)."""

    def __init__(
        self,
        objects: Mapping[str, bytes] | None = None,
        *,
        create_fails: str | None = None,
        times: int | None = None,
        bug: bool = False,
        created_fails: bool = False,
        exists_fails: bool = False,
        read_fails: bool = False,
        appears: Mapping[str, bytes] | None = None,
    ) -> None:
        super().__init__(objects)
        self.create_fails = create_fails
        self.times = times
        self.bug = bug
        self.created_fails = created_fails
        self.exists_fails = exists_fails
        self.read_fails = read_fails
        self.appears = dict(appears or {})
        self.creates: list[str] = []

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        self.creates.append(uri)
        if uri in self.appears:
            super().create(uri, self.appears.pop(uri), content_type)
        failing = self.create_fails is not None and uri.endswith(self.create_fails)
        if failing and (self.times is None or self.times > 0):
            if self.times is not None:
                self.times -= 1
            if self.bug:
                raise RuntimeError("bug in the blob store")
            raise StoreUnavailable(Shared.GCS_WRITE_FAILED, "gcs write failed: Unavailable")
        return super().create(uri, data, content_type)

    def created(self, uri: str) -> datetime | None:
        if self.created_fails:
            raise StoreUnavailable(Shared.GCS_READ_FAILED, "gcs read failed: Unavailable")
        return super().created(uri)

    def exists(self, uri: str) -> bool:
        if self.exists_fails:
            raise StoreUnavailable(Shared.GCS_READ_FAILED, "gcs read failed: Unavailable")
        return super().exists(uri)

    def read(self, uri: str, limit: int) -> bytes:
        if self.read_fails:
            raise StoreUnavailable(Shared.GCS_READ_FAILED, "gcs read failed: Unavailable")
        return super().read(uri, limit)


class ClaimAdvancesClock(MemoryDocumentStore):
    """The claim write takes `seconds` of the invocation's time (a slow Firestore), on a clock
    the runner reads as its monotonic time."""

    def __init__(self, documents: Mapping[str, JsonObject], clock: FakeClock, seconds: float):
        super().__init__(documents)
        self.clock = clock
        self.seconds = seconds

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        result = super().update(collection, doc_id, patch, gate, timeout_s)
        if not is_finalize(patch):
            self.clock.now += self.seconds
        return result


# --- typed fakes for the backtest worker's in-memory suite -------------------------------------


class JobStore(MemoryDocumentStore):
    """In-memory Firestore for backtest jobs, failing where a test puts it.

    Job writes are told apart by the status they set (`running`: the claim; `failed` or
    `completed`: a finalize). `write_faults` raise once on such a write; `interfere` first
    applies another actor's fields (a twin's claim, an operator's finalize). `create_faults`
    raise on successive creates (after landing, with `create_lands`: a lost reply);
    `failing_gets` scripts the next reads of a collection (True: that read fails)."""

    def __init__(
        self,
        documents: Mapping[str, JsonObject],
        *,
        write_faults: Mapping[str, Exception] | None = None,
        interfere: Mapping[str, Mapping[Path, Any]] | None = None,
        create_faults: Sequence[Exception] = (),
        create_lands: bool = False,
        failing_gets: Mapping[str, Sequence[bool]] | None = None,
    ) -> None:
        super().__init__(documents)
        self.write_faults = dict(write_faults or {})
        self.interfere = {status: dict(patch) for status, patch in (interfere or {}).items()}
        self.create_faults = list(create_faults)
        self.create_lands = create_lands
        self.failing_gets = {name: list(script) for name, script in (failing_gets or {}).items()}
        self.creates = 0

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        status = str(patch.get(("status",)))
        if status in self.interfere:
            other = self.interfere.pop(status)
            super().update(collection, doc_id, other, lambda _data: None, timeout_s)
        if status in self.write_faults:
            raise self.write_faults.pop(status)
        return super().update(collection, doc_id, patch, gate, timeout_s)

    def create(self, collection: str, doc_id: str, data: JsonObject) -> bool:
        self.creates += 1
        if self.create_faults:
            fault = self.create_faults.pop(0)
            if self.create_lands:
                super().create(collection, doc_id, data)
            raise fault
        return super().create(collection, doc_id, data)

    def get(self, collection: str, doc_id: str) -> Snapshot | None:
        script = self.failing_gets.get(collection)
        if script and script.pop(0):
            raise StoreUnavailable(
                Shared.FIRESTORE_UNAVAILABLE, "firestore read failed: ServiceUnavailable"
            )
        return super().get(collection, doc_id)


class FlakyHistory(MemoryBlobStore):
    """Cloud Storage whose next `failures` reads fail as the adapter reports an outage or a
    missing permission, then answers from its objects."""

    def __init__(self, objects: Mapping[str, bytes], *, failures: int) -> None:
        super().__init__(objects)
        self.failures = failures
        self.reads = 0

    def read(self, uri: str, limit: int) -> bytes:
        self.reads += 1
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable(Shared.GCS_READ_FAILED, "gcs read failed: Forbidden")
        return super().read(uri, limit)


class Unreadable:
    """A stored value that cannot even be compared: stands for a document the worker cannot
    make sense of, so a state's own way out for unexpected errors is taken."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("cannot compare a corrupt value")

    def __ne__(self, other: object) -> bool:
        raise RuntimeError("cannot compare a corrupt value")

    __hash__ = object.__hash__
