"""Firestore: documents with gated, preconditioned writes; create-only creations; registries.

No transactions: every write is preceded by a read and carries the precondition
`last_update_time = snapshot.update_time` (SPEC §4). The retry loop is written out rather than
taken from `google.api_core.retry`, because the spec fixes both the attempt count (3 to 5) and the
jittered pause (100 to 500 ms) and wants the gate re-checked on each re-read, which a
time-bounded, full-jitter Retry does not express. Clients are created on first use, once per
process and database: importing and creating them costs over a second, and most events (no-ops
decided from the event's own document) never need one.
"""

from __future__ import annotations

import copy
import functools
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from adapters.google import errors, retries
from engine.errors import Shared, StoreUnavailable, WriteOutcomeUnknown
from engine.ports import Gate, GuardedWrite, JsonObject, Patch, Path, Snapshot, apply, holds

READ_TIMEOUT_S = 10.0
ATTEMPTS = 4
PAUSE_MIN_S = 0.1  # jittered pause between attempts (SPEC §4: 100 to 500 ms)
PAUSE_MAX_S = 0.5
SCAN_TIMEOUT_S = 60.0
CREATE_TIMEOUT_S = 15.0


def lost_race() -> tuple[type[Exception], ...]:
    """What a precondition race looks like: another write changed the document first."""
    return (errors().FailedPrecondition, errors().Aborted, errors().Conflict)


Journal = Callable[[JsonObject], None]


@functools.cache
def client(project: str | None, database: str) -> Any:
    """The process's Firestore client for one database (the library is thread-safe)."""
    from google.cloud import firestore

    return firestore.Client(project=project, database=database)


class LazyClient:
    """A client built on first use, by the adapter itself: no proxy object in between."""

    def __init__(self, project: str | None, database: str, given: Any = None) -> None:
        self._project = project
        self._database = database
        self._client = given
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = client(self._project, self._database)
            return self._client


def bounded(total_s: float) -> Any:
    """The client's transient-error retry, capped at the spec's timeout for the whole call
    (the default keeps retrying for minutes while Firestore is down)."""
    return retries().Retry(
        predicate=retries().if_transient_error,
        initial=0.1,
        maximum=2.0,
        multiplier=2.0,
        timeout=total_s,
    )


def unavailable(what: str, exc: Exception) -> StoreUnavailable:
    """Names the exception type only: its text can carry document paths and hosts."""
    return StoreUnavailable(
        Shared.FIRESTORE_UNAVAILABLE, f"firestore {what} failed: {type(exc).__name__}"
    )


def read_data(
    client: LazyClient, collection: str, doc_id: str, timeout_s: float = READ_TIMEOUT_S
) -> JsonObject | None:
    """One document's data, None when it does not exist: a plain read for collections that are
    only read (registries, chart templates), bounded to `timeout_s` retries included; a failure
    is `StoreUnavailable`."""
    try:
        doc = (
            client.get()
            .collection(collection)
            .document(doc_id)
            .get(retry=bounded(timeout_s), timeout=timeout_s)
        )
    except errors().GoogleAPIError as exc:
        raise unavailable("read", exc) from None
    if not doc.exists:
        return None
    data: JsonObject = doc.to_dict() or {}
    return data


class FirestoreDocumentStore:
    """Documents of any collection, written only through a gate and a precondition.

    The last snapshot seen of each document (read, or produced by our own committed write) is
    kept, so a write can first be attempted against it without another read: the precondition
    alone decides, and a lost race falls back to a fresh read. In the common case a claim and
    its finalize each save a round trip.
    """

    KNOWN_DOCUMENTS = 64

    def __init__(
        self,
        project: str | None,
        database: str,
        *,
        given: Any = None,
        journal: Journal | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = LazyClient(project, database, given)
        self._journal = journal
        self._sleep = sleep
        self._clock = clock
        self._known: OrderedDict[tuple[str, str], tuple[JsonObject, datetime]] = OrderedDict()
        self._known_lock = threading.Lock()

    def _remember(self, key: tuple[str, str], data: JsonObject, update_time: datetime) -> None:
        with self._known_lock:
            self._known[key] = (data, update_time)
            self._known.move_to_end(key)
            while len(self._known) > self.KNOWN_DOCUMENTS:
                self._known.popitem(last=False)

    def _recall(self, key: tuple[str, str]) -> tuple[JsonObject, datetime] | None:
        with self._known_lock:
            return self._known.pop(key, None)  # used once: a lost race must re-read

    def _ref(self, collection: str, doc_id: str) -> Any:
        return self._client.get().collection(collection).document(doc_id)

    def _read(self, collection: str, doc_id: str, timeout: float = READ_TIMEOUT_S) -> Any:
        timeout = max(0.1, min(READ_TIMEOUT_S, timeout))
        try:
            return self._ref(collection, doc_id).get(retry=bounded(timeout), timeout=timeout)
        except errors().GoogleAPIError as exc:
            raise unavailable("read", exc) from None

    def get(self, collection: str, doc_id: str) -> Snapshot | None:
        doc = self._read(collection, doc_id)
        if not doc.exists:
            return None
        data = doc.to_dict() or {}
        self._remember((collection, doc_id), copy.deepcopy(data), doc.update_time)
        return Snapshot(data=data, update_time=doc.update_time)

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        """Read, gate, preconditioned write; retried on lost races, all within `timeout_s`.

        A write that erred may still have landed. From then on only a re-read decides: it finds
        our patch (committed), the gate no longer passing (lost), or the document as we left it
        (not landed: the write may be tried again). When the re-reads themselves keep failing
        until the timeout, the outcome is unknown and `WriteOutcomeUnknown` says so — it is
        never reported as "not written" (COMMON.md §3).
        """
        key = (collection, doc_id)
        deadline = self._clock() + timeout_s
        uncertain = False  # a write of ours erred: it may have landed unseen
        erred = True  # no lost race explains a give-up (cleared when one does)
        writes = 0
        while True:
            known = None if uncertain else self._recall(key)
            if known is not None:
                data, update_time = known
            else:
                try:
                    doc = self._read(collection, doc_id, self._remaining(deadline))
                except StoreUnavailable:
                    if not uncertain:
                        raise  # nothing of ours was sent: a plain fault
                    if self._remaining(deadline) <= PAUSE_MAX_S:
                        raise WriteOutcomeUnknown(
                            Shared.FIRESTORE_UNAVAILABLE,
                            "firestore write outcome unknown: re-reads failed",
                        ) from None
                    self._pause()
                    continue
                if not doc.exists:
                    return GuardedWrite(committed=False, observed="MISSING")
                data, update_time = doc.to_dict() or {}, doc.update_time
            if uncertain and holds(data, patch):
                return self._committed(key, patch)
            refused = gate(data)
            if refused is not None:
                if known is not None:
                    continue  # decided on a remembered copy: confirm on a fresh read
                return GuardedWrite(committed=False, observed=refused)
            # Proven not landed (or never sent): uncertainty is over until the next write.
            uncertain = False
            if writes == ATTEMPTS or self._remaining(deadline) <= 0:
                return GuardedWrite(committed=False, failed=erred)
            writes += 1
            call_timeout = max(0.1, min(timeout_s, self._remaining(deadline)))
            try:
                result = self._ref(collection, doc_id).update(
                    {field_path(path): value for path, value in patch.items()},
                    option=self._client.get().write_option(last_update_time=update_time),
                    retry=bounded(call_timeout),
                    timeout=call_timeout,
                )
            except lost_race():
                # Lost to a twin, or our own write landed and its retried commit then failed
                # the precondition: the re-read tells (our patches carry a unique value).
                uncertain, erred = True, False
                if known is not None:
                    continue  # our snapshot was stale, not a race with a twin: re-read now
            except errors().GoogleAPIError:
                uncertain, erred = True, True
            else:
                apply(data, patch)
                self._remember(key, data, result.update_time)
                return self._committed(key, patch)
            self._pause()

    def _remaining(self, deadline: float) -> float:
        return deadline - self._clock()

    def _pause(self) -> None:
        self._sleep(random.uniform(PAUSE_MIN_S, PAUSE_MAX_S))

    def _committed(self, key: tuple[str, str], patch: Mapping[Path, Any]) -> GuardedWrite:
        if self._journal is not None:
            self._journal(
                {
                    "doc": "/".join(key),
                    "fields": {".".join(path): value for path, value in patch.items()},
                }
            )
        return GuardedWrite(committed=True)

    def create(self, collection: str, doc_id: str, data: JsonObject) -> bool:
        """Create-only; a transient failure is retried, and a retry that finds the document
        means it exists (perhaps our own first attempt: the caller checks whose it is)."""
        try:
            self._ref(collection, doc_id).create(
                data, retry=bounded(CREATE_TIMEOUT_S), timeout=CREATE_TIMEOUT_S
            )
        except errors().AlreadyExists:
            return False
        except errors().GoogleAPIError as exc:
            raise unavailable("create", exc) from None
        if self._journal is not None:
            self._journal({"doc": f"{collection}/{doc_id}", "created": data})
        return True

    def query(
        self, collection: str, field: str, value: Any, limit: int
    ) -> list[tuple[str, JsonObject]]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self._client.get()
            .collection(collection)
            .where(filter=FieldFilter(field, "==", value))
            .limit(limit)
        )
        try:
            docs = list(query.stream(retry=bounded(SCAN_TIMEOUT_S), timeout=SCAN_TIMEOUT_S))
        except errors().GoogleAPIError as exc:
            raise unavailable("query", exc) from None
        return [(doc.id, doc.to_dict() or {}) for doc in docs]


def field_path(path: Path) -> str:
    """A field path for `update()`, each segment quoted as needed (keys may hold '.', ':')."""
    from google.cloud.firestore_v1.field_path import FieldPath

    api_repr: str = FieldPath(*path).to_api_repr()
    return api_repr


class FirestoreRegistry:
    """Registry collections (prompts, schemas). Their documents are immutable by contract, so
    each one found is cached for the life of the instance; a missing one is asked for again
    next time."""

    def __init__(self, project: str | None, database: str, *, given: Any = None) -> None:
        self._client = LazyClient(project, database, given)
        self._cache: dict[tuple[str, str], JsonObject] = {}

    def document(self, collection: str, doc_id: str) -> JsonObject | None:
        key = (collection, doc_id)
        if key in self._cache:
            return self._cache[key]
        data = read_data(self._client, collection, doc_id)
        if data is not None:
            self._cache[key] = data
        return data
