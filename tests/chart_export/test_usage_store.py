"""Reservations on the Firestore emulator (which enforces the create-only and `update_time`
preconditions the store relies on) and in memory, against CHART_EXPORT §7.

Behaviour both stores share runs on both; races, faults and outages are Firestore's alone.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import jsonschema
import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore as gcf

from adapters.chart_usage import FirestoreUsageStore, MemoryUsageStore
from devstack.services import FirestoreEmulator, free_port
from engine.errors import Shared, StoreUnavailable
from states.chart_export.usage import (
    UNREADABLE_COUNT,
    AtLimit,
    Contended,
    Reservation,
    Reserved,
    UsageStore,
)
from tests.chart_export import racers
from tests.contracts import load

COLLECTION = racers.COLLECTION
ACCOUNT = "acc-1"
NOW = datetime(2025, 12, 15, 10, 26, tzinfo=UTC)
TODAY = "2025-12-15T00:00:00Z"
STAMP = "2025-12-15T10:26:00.000000Z"
EARLIER = "2025-12-15T09:58:12Z"
DEFAULT_LIMIT = 44
PLAN_MAX = 50  # BASIC
USAGE_SCHEMA = load("chart_export/chart_img_account_usage.schema.json")


def no_sleep(_seconds: float) -> None:
    return None


# --------------------------------------------------------------------------------------
# The two stores behind one test interface
# --------------------------------------------------------------------------------------


class Backend(Protocol):
    def seed(self, doc: dict[str, Any], account_id: str = ACCOUNT) -> None: ...

    def store(self, default_limit: int = DEFAULT_LIMIT, plan_max: int = PLAN_MAX) -> UsageStore: ...

    def doc(self, account_id: str = ACCOUNT) -> dict[str, Any] | None: ...

    def version(self, account_id: str = ACCOUNT) -> object:
        """Changes with every write: update_time on Firestore, the whole document in memory."""
        ...


class FirestoreBackend:
    def __init__(self, client: gcf.Client) -> None:
        self.client = client

    def _ref(self, account_id: str) -> Any:
        return self.client.collection(COLLECTION).document(account_id)

    def seed(self, doc: dict[str, Any], account_id: str = ACCOUNT) -> None:
        self._ref(account_id).set(doc)

    def store(
        self, default_limit: int = DEFAULT_LIMIT, plan_max: int = PLAN_MAX
    ) -> FirestoreUsageStore:
        return FirestoreUsageStore(
            None, "(default)", COLLECTION, default_limit, plan_max, no_sleep, given=self.client
        )

    def doc(self, account_id: str = ACCOUNT) -> dict[str, Any] | None:
        snapshot = self._ref(account_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def version(self, account_id: str = ACCOUNT) -> object:
        return self._ref(account_id).get().update_time


class MemoryBackend:
    def __init__(self) -> None:
        self._seeds: dict[str, dict[str, Any]] = {}
        self._store: MemoryUsageStore | None = None

    def seed(self, doc: dict[str, Any], account_id: str = ACCOUNT) -> None:
        assert self._store is None, "seed before the store is built"
        self._seeds[account_id] = doc

    def store(
        self, default_limit: int = DEFAULT_LIMIT, plan_max: int = PLAN_MAX
    ) -> MemoryUsageStore:
        self._store = MemoryUsageStore(default_limit, plan_max, self._seeds)
        return self._store

    def doc(self, account_id: str = ACCOUNT) -> dict[str, Any] | None:
        assert self._store is not None
        return self._store.document(account_id)

    def version(self, account_id: str = ACCOUNT) -> object:
        return self.doc(account_id)


@pytest.fixture(params=["firestore", "memory"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "firestore":
        return FirestoreBackend(request.getfixturevalue("firestore"))
    return MemoryBackend()


# --------------------------------------------------------------------------------------
# Behaviour shared by both stores
# --------------------------------------------------------------------------------------


def test_the_first_reservation_creates_the_document_with_exactly_three_fields(
    backend: Backend,
) -> None:
    assert backend.store().reserve(ACCOUNT, None, NOW) == Reserved(1, DEFAULT_LIMIT)
    doc = backend.doc()
    assert doc == {"usageToday": 1, "windowStart": TODAY, "updatedAt": STAMP}
    jsonschema.validate(doc, USAGE_SCHEMA)


def test_reservations_count_up_to_the_limit_and_then_write_nothing(backend: Backend) -> None:
    store = backend.store()
    got = [store.reserve(ACCOUNT, 3, NOW) for _ in range(3)]
    assert got == [Reserved(1, 3), Reserved(2, 3), Reserved(3, 3)]
    before = backend.version()
    assert store.reserve(ACCOUNT, 3, NOW) == AtLimit(3, 3)
    assert backend.version() == before
    assert backend.doc() == {"usageToday": 3, "windowStart": TODAY, "updatedAt": STAMP}


def test_a_seeded_count_at_the_limit_is_left_unchanged(backend: Backend) -> None:
    backend.seed({"usageToday": 44, "windowStart": TODAY, "updatedAt": EARLIER})
    store = backend.store()
    before = backend.version()
    assert store.reserve(ACCOUNT, None, NOW) == AtLimit(44, 44)
    assert backend.version() == before


@pytest.mark.parametrize(
    "window",
    ["2025-12-14T00:00:00Z", "2025-12-16T00:00:00Z", None, "not a time"],
    ids=["older", "newer", "missing", "unparsable"],
)
def test_a_window_other_than_today_starts_again_from_zero(
    backend: Backend, window: str | None
) -> None:
    seeded: dict[str, Any] = {"usageToday": 44, "updatedAt": EARLIER}
    if window is not None:
        seeded["windowStart"] = window
    backend.seed(seeded)
    assert backend.store().reserve(ACCOUNT, None, NOW) == Reserved(1, DEFAULT_LIMIT)
    assert backend.doc() == {"usageToday": 1, "windowStart": TODAY, "updatedAt": STAMP}


def test_the_documents_daily_limit_wins_over_the_secrets(backend: Backend) -> None:
    backend.seed({"usageToday": 2, "windowStart": TODAY, "dailyLimit": 3})
    store = backend.store()
    assert store.reserve(ACCOUNT, 30, NOW) == Reserved(3, 3)
    assert store.reserve(ACCOUNT, 30, NOW) == AtLimit(3, 3)
    assert (backend.doc() or {})["dailyLimit"] == 3


def test_every_limit_is_capped_at_the_plans_daily_max(backend: Backend) -> None:
    backend.seed({"usageToday": 49, "windowStart": TODAY, "dailyLimit": 500})
    backend.seed({"usageToday": 49, "windowStart": TODAY}, account_id="acc-2")
    store = backend.store()
    assert store.reserve(ACCOUNT, 1000, NOW) == Reserved(50, 50)
    assert store.reserve(ACCOUNT, 1000, NOW) == AtLimit(50, 50)
    assert store.reserve("acc-2", 1000, NOW) == Reserved(50, 50)
    assert store.reserve("acc-2", 1000, NOW) == AtLimit(50, 50)


def test_a_daily_limit_of_zero_disables_the_account(backend: Backend) -> None:
    backend.seed({"dailyLimit": 0, "note": "disabled by ops"})
    store = backend.store()
    before = backend.version()
    assert store.reserve(ACCOUNT, 30, NOW) == AtLimit(0, 0)
    assert backend.version() == before


def test_a_default_limit_of_zero_creates_no_document(backend: Backend) -> None:
    assert backend.store(default_limit=0).reserve(ACCOUNT, None, NOW) == AtLimit(0, 0)
    assert backend.doc() is None


def test_unknown_fields_survive_and_daily_limit_is_never_written(backend: Backend) -> None:
    seeded = {
        "usageToday": 5,
        "windowStart": TODAY,
        "dailyLimit": 40,
        "note": "kept",
        "owner": {"team": "ops"},
    }
    backend.seed(seeded)
    store = backend.store()
    assert store.reserve(ACCOUNT, 10, NOW) == Reserved(6, 40)
    assert backend.doc() == {**seeded, "usageToday": 6, "updatedAt": STAMP}
    assert store.mark_exhausted(ACCOUNT, 10, NOW) is True
    assert backend.doc() == {**seeded, "usageToday": 40, "updatedAt": STAMP, "exhaustedAt": STAMP}


def test_a_new_document_never_gets_a_daily_limit(backend: Backend) -> None:
    store = backend.store()
    store.reserve(ACCOUNT, 7, NOW)
    store.reserve(ACCOUNT, 7, NOW)
    assert "dailyLimit" not in (backend.doc() or {})
    store.mark_exhausted("acc-2", 7, NOW)
    assert "dailyLimit" not in (backend.doc("acc-2") or {})


def test_mark_exhausted_raises_the_count_to_the_limit(backend: Backend) -> None:
    backend.seed({"usageToday": 3, "windowStart": TODAY, "updatedAt": EARLIER})
    store = backend.store()
    assert store.mark_exhausted(ACCOUNT, None, NOW) is True
    doc = backend.doc()
    assert doc == {"usageToday": 44, "windowStart": TODAY, "updatedAt": STAMP, "exhaustedAt": STAMP}
    jsonschema.validate(doc, USAGE_SCHEMA)
    assert store.reserve(ACCOUNT, None, NOW) == AtLimit(44, 44)


def test_mark_exhausted_creates_a_missing_document(backend: Backend) -> None:
    store = backend.store()
    assert store.mark_exhausted(ACCOUNT, 30, NOW) is True
    doc = backend.doc()
    assert doc == {"usageToday": 30, "windowStart": TODAY, "updatedAt": STAMP, "exhaustedAt": STAMP}
    jsonschema.validate(doc, USAGE_SCHEMA)
    assert store.reserve(ACCOUNT, 30, NOW) == AtLimit(30, 30)


def test_mark_exhausted_never_lowers_a_count(backend: Backend) -> None:
    backend.seed({"usageToday": 48, "windowStart": TODAY})
    store = backend.store()
    assert store.mark_exhausted(ACCOUNT, None, NOW) is True
    assert (backend.doc() or {})["usageToday"] == 48


def test_an_unreadable_count_refuses_quota_until_mark_exhausted_repairs_it(
    backend: Backend,
) -> None:
    backend.seed({"usageToday": "12", "windowStart": TODAY})
    store = backend.store()
    before = backend.version()
    assert store.reserve(ACCOUNT, None, NOW) == AtLimit(UNREADABLE_COUNT, 44)
    assert backend.version() == before
    assert store.mark_exhausted(ACCOUNT, None, NOW) is True
    assert (backend.doc() or {})["usageToday"] == 44


def test_a_new_utc_day_reopens_an_exhausted_account(backend: Backend) -> None:
    store = backend.store()
    store.mark_exhausted(ACCOUNT, None, NOW)
    tomorrow = datetime(2025, 12, 16, 0, 0, 1, tzinfo=UTC)
    assert store.reserve(ACCOUNT, None, tomorrow) == Reserved(1, 44)
    assert (backend.doc() or {})["windowStart"] == "2025-12-16T00:00:00Z"


# --------------------------------------------------------------------------------------
# Races and faults (Firestore)
# --------------------------------------------------------------------------------------


class InterleavedStore(FirestoreUsageStore):
    """Runs `between(n)` right after its n-th read (1-based): another instance's write lands
    between this store's read and its conditional write."""

    def __init__(self, client: gcf.Client, between: Callable[[int], None], **kw: Any) -> None:
        super().__init__(None, "(default)", COLLECTION, DEFAULT_LIMIT, PLAN_MAX, given=client, **kw)
        self._between = between
        self.reads = 0

    def _read(self, ref: Any) -> tuple[dict[str, Any] | None, datetime | None]:
        result = super()._read(ref)
        self.reads += 1
        self._between(self.reads)
        return result


def twin(client: gcf.Client) -> FirestoreUsageStore:
    return FirestoreUsageStore(
        None, "(default)", COLLECTION, DEFAULT_LIMIT, PLAN_MAX, no_sleep, given=client
    )


def test_a_create_race_counts_both_reservations(firestore: gcf.Client) -> None:
    """Both stores see no document; the twin creates it first, so our create-only write fails
    and we count on top of it instead of overwriting it."""
    twin_got: list[Reservation] = []

    def twin_first(read: int) -> None:
        if read == 1:
            twin_got.append(twin(firestore).reserve(ACCOUNT, None, NOW))

    store = InterleavedStore(firestore, twin_first, sleep=no_sleep)
    assert store.reserve(ACCOUNT, None, NOW) == Reserved(2, 44)
    assert twin_got == [Reserved(1, 44)]
    assert store.reads == 2
    assert (FirestoreBackend(firestore).doc() or {})["usageToday"] == 2


def test_a_lost_precondition_is_retried_on_a_fresh_read(firestore: gcf.Client) -> None:
    FirestoreBackend(firestore).seed({"usageToday": 3, "windowStart": TODAY})

    def twin_first(read: int) -> None:
        if read == 1:
            assert twin(firestore).reserve(ACCOUNT, None, NOW) == Reserved(4, 44)

    store = InterleavedStore(firestore, twin_first, sleep=no_sleep)
    assert store.reserve(ACCOUNT, None, NOW) == Reserved(5, 44)
    assert store.reads == 2
    assert (FirestoreBackend(firestore).doc() or {})["usageToday"] == 5


class RecordingJitter:
    def __init__(self) -> None:
        self.asked: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float, /) -> float:
        self.asked.append((a, b))
        return (a + b) / 2


@pytest.mark.parametrize("call", ["reserve", "mark_exhausted"])
def test_five_lost_races_give_up(firestore: gcf.Client, call: str) -> None:
    backend = FirestoreBackend(firestore)
    backend.seed({"usageToday": 3, "windowStart": TODAY})
    slept: list[float] = []
    jitter = RecordingJitter()

    def twin_wins(_read: int) -> None:
        twin(firestore).reserve(ACCOUNT, None, NOW)

    store = InterleavedStore(firestore, twin_wins, sleep=slept.append, rng=jitter)
    if call == "reserve":
        assert store.reserve(ACCOUNT, None, NOW) == Contended(attempts=5)
    else:
        assert store.mark_exhausted(ACCOUNT, None, NOW) is False
    assert store.reads == 5
    assert jitter.asked == [(0.02, 0.2)] * 4  # a pause between rounds, none after the last
    assert slept == [0.11] * 4
    assert backend.doc() == {"usageToday": 8, "windowStart": TODAY, "updatedAt": STAMP}


class FaultyRef:
    """A document reference whose first write does (`lands`) or does not commit and then
    raises `error` anyway: what the client sees when a reply is lost, or when its transparent
    retry of a commit that had landed then fails the precondition. Later writes pass through."""

    def __init__(self, real: Any, error: Exception, lands: bool) -> None:
        self._real = real
        self._error: Exception | None = error
        self._lands = lands

    def get(self, **kw: Any) -> Any:
        return self._real.get(**kw)

    def create(self, fields: dict[str, Any], **kw: Any) -> Any:
        return self._write(lambda: self._real.create(fields, **kw))

    def update(self, fields: dict[str, Any], **kw: Any) -> Any:
        return self._write(lambda: self._real.update(fields, **kw))

    def _write(self, commit: Callable[[], Any]) -> Any:
        error, self._error = self._error, None
        if error is None:
            return commit()
        if self._lands:
            commit()
        raise error


class FaultyStore(FirestoreUsageStore):
    def __init__(self, client: gcf.Client, error: Exception, lands: bool) -> None:
        super().__init__(
            None, "(default)", COLLECTION, DEFAULT_LIMIT, PLAN_MAX, no_sleep, given=client
        )
        self._fault = (error, lands)

    def _ref(self, account_id: str) -> Any:
        return FaultyRef(super()._ref(account_id), *self._fault)


def api_error(kind: type[gexc.GoogleAPICallError]) -> gexc.GoogleAPICallError:
    return kind("injected")


@pytest.mark.parametrize(
    ("seeded", "kind", "lands", "expected", "stored"),
    [
        # the retried commit of our landed update fails its precondition: we counted 4 but
        # never used it; the next round reserves 5, so number 4 goes to nobody
        (3, gexc.FailedPrecondition, True, Reserved(5, 44), 5),
        # the same for a create whose retry finds the document it made
        (None, gexc.AlreadyExists, True, Reserved(2, 44), 2),
        # the reply of a landed write is lost: not reserved, the count stays spent
        (3, gexc.ServiceUnavailable, True, None, 4),
        (3, gexc.DeadlineExceeded, True, None, 4),
        (None, gexc.ServiceUnavailable, True, None, 1),
        # an error that did not land is not reserved either
        (3, gexc.PermissionDenied, False, None, 3),
    ],
    ids=[
        "update_retry_lost_precondition",
        "create_retry_already_exists",
        "update_reply_lost",
        "update_deadline",
        "create_reply_lost",
        "permission_denied",
    ],
)
def test_an_ambiguous_write_is_never_a_reservation(
    firestore: gcf.Client,
    seeded: int | None,
    kind: type[gexc.GoogleAPICallError],
    lands: bool,
    expected: Reserved | None,
    stored: int,
) -> None:
    backend = FirestoreBackend(firestore)
    if seeded is not None:
        backend.seed({"usageToday": seeded, "windowStart": TODAY})
    store = FaultyStore(firestore, api_error(kind), lands)
    if expected is None:
        with pytest.raises(StoreUnavailable) as raised:
            store.reserve(ACCOUNT, None, NOW)
        assert raised.value.code == Shared.FIRESTORE_UNAVAILABLE
        assert raised.value.message == f"firestore write failed: {kind.__name__}"
    else:
        assert store.reserve(ACCOUNT, None, NOW) == expected
    assert (backend.doc() or {})["usageToday"] == stored
    # whatever happened, the next reservation gets the next unused number
    assert twin(firestore).reserve(ACCOUNT, None, NOW) == Reserved(stored + 1, 44)


@pytest.mark.parametrize("call", ["reserve", "mark_exhausted"])
def test_firestore_down_is_store_unavailable_without_values(
    monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{port}")
    client = gcf.Client(project="demo-tda")
    store = FirestoreUsageStore(
        None, "(default)", COLLECTION, 44, 50, no_sleep, given=client, timeout_s=0.3
    )
    try:
        with pytest.raises(StoreUnavailable) as raised:
            getattr(store, call)("acc-secret-name", None, NOW)
    finally:
        client.close()
    error = raised.value
    assert error.code == Shared.FIRESTORE_UNAVAILABLE
    # an exception type name and nothing else: no account id, host, port or client text
    assert re.fullmatch(r"firestore read failed: [A-Za-z]+", error.message), error.message
    assert str(error) == error.message
    assert error.__cause__ is None and error.__suppress_context__


# --------------------------------------------------------------------------------------
# The key property: racing instances never hand out more than the limit
# --------------------------------------------------------------------------------------

RACERS = 32
RACE_LIMIT = 10


def assert_exactly_the_limit(results: list[Reservation], stored: dict[str, Any] | None) -> None:
    numbers = sorted(r.usage_today for r in results if isinstance(r, Reserved))
    assert numbers == list(range(1, RACE_LIMIT + 1)), results  # each number once, no gap
    assert len(results) == RACERS
    assert all(
        r == AtLimit(RACE_LIMIT, RACE_LIMIT) or isinstance(r, Contended)
        for r in results
        if not isinstance(r, Reserved)
    )
    assert stored is not None and stored["usageToday"] == RACE_LIMIT


@pytest.mark.parametrize(
    "seeded",
    [None, {"usageToday": 44, "windowStart": "2025-12-14T00:00:00Z"}],
    ids=["missing", "yesterday"],
)
def test_racing_threads_reserve_exactly_the_limit(
    firestore: gcf.Client, firestore_emulator: FirestoreEmulator, seeded: dict[str, Any] | None
) -> None:
    backend = FirestoreBackend(firestore)
    if seeded is not None:
        backend.seed(seeded)
    results = racers.race(firestore_emulator.project, ACCOUNT, RACERS, RACE_LIMIT, PLAN_MAX, NOW)
    assert_exactly_the_limit(results, backend.doc())


def test_racing_processes_reserve_exactly_the_limit(
    firestore: gcf.Client, firestore_emulator: FirestoreEmulator
) -> None:
    processes, per_process = 4, RACERS // 4
    spawn = multiprocessing.get_context("spawn")  # no fork: the parent holds gRPC channels
    start = spawn.Barrier(processes)
    out = spawn.Queue()
    workers = [
        spawn.Process(
            target=racers.race_in_process,
            args=(
                firestore_emulator.host,
                firestore_emulator.project,
                ACCOUNT,
                per_process,
                RACE_LIMIT,
                PLAN_MAX,
                NOW,
                start,
                out,
            ),
        )
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    try:
        parts = [out.get(timeout=120) for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=30)
    results: list[Reservation] = []
    for part in parts:
        assert isinstance(part, list), f"a racing process failed: {part}"
        results.extend(part)
    assert_exactly_the_limit(results, FirestoreBackend(firestore).doc())


def test_racing_threads_on_one_memory_store_reserve_exactly_the_limit() -> None:
    store = MemoryUsageStore(RACE_LIMIT, PLAN_MAX)
    start = threading.Barrier(RACERS)
    results: list[Reservation] = []
    lock = threading.Lock()

    def reserve() -> None:
        start.wait()
        got = store.reserve(ACCOUNT, None, NOW)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=reserve) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not any(isinstance(r, Contended) for r in results)
    assert_exactly_the_limit(results, store.document(ACCOUNT))
