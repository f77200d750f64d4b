"""Chart-IMG account reservations: on Firestore (CHART_EXPORT §7) and in instance memory.

Firestore: every round reads the usage document and then writes conditionally on exactly the
version it read: create-only when it is missing, otherwise a field update with the precondition
`last_update_time = snapshot.update_time`. Two instances that read the same version cannot both
commit, so the committed reservations of an account form one chain 1, 2, 3, … and the count
never passes the limit. There are no transactions (they would hold the document across a round
trip and retry on their own schedule), no increment transforms (they commit without looking at
the limit) and no unconditional writes (they would overwrite a racer's reservation).

Ambiguous writes. The client can see an error although the commit landed (a lost reply, or a
retried commit that then fails its own precondition). Such a write is never reported as
`Reserved`: a non-race error raises `StoreUnavailable`, a race error sends the round back to a
fresh read, which then counts on top of the write that may be ours. Recognising "our" write on
the re-read is deliberately not attempted: two instances writing at the same instant leave
identical fields, so a guess could hand one committed number to two callers and send a request
past the limit. The cost of this rule is at most one uncounted-but-unused reservation per
ambiguous write, i.e. quota left unused, never quota overspent.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from adapters.firestore import LazyClient, bounded, lost_race, unavailable
from adapters.google import errors
from states.chart_export.usage import (
    JITTER_S,
    MAX_ATTEMPTS,
    AtLimit,
    Contended,
    Reservation,
    Reserved,
    decide_reservation,
    exhausted_fields,
    reservation_fields,
)

IO_TIMEOUT_S = 10.0
"""§7 step 1's read timeout; the writes of a round get the same bound."""


def update_lost() -> tuple[type[Exception], ...]:
    """Errors that send the round back to a fresh read: a racer's write (or a delete) came
    between our read and our write, or our own landed commit, replayed by the client's retry,
    failed its precondition. Either way this call has no reservation and the re-read counts on
    top of what is stored (module docstring)."""
    return (*lost_race(), errors().NotFound)


class Jitter(Protocol):
    """The one method of `random` the store uses; tests pass a recording fake."""

    def uniform(self, a: float, b: float, /) -> float: ...


class FirestoreUsageStore:
    """Reservations on `{collection}/{accountId}` documents, shared by every instance.

    Holds no per-account state between calls: each call starts from a fresh read, so many
    instances (and many stores in one instance) can race on one account safely. The client is
    created on first use (`given` replaces it: tests and benchmarks pass their own), so building
    the store costs nothing on an instance whose events are all no-ops.
    """

    def __init__(
        self,
        project: str | None,
        database: str,
        collection: str,
        default_limit: int,
        plan_max: int,
        sleep: Callable[[float], None] = time.sleep,
        rng: Jitter = random,
        *,
        given: Any = None,
        timeout_s: float = IO_TIMEOUT_S,
    ) -> None:
        self._client = LazyClient(project, database, given)
        self._collection = collection
        self._default_limit = default_limit
        self._plan_max = plan_max
        self._sleep = sleep
        self._rng = rng
        self._timeout_s = timeout_s

    def reserve(self, account_id: str, secret_limit: int | None, now: datetime) -> Reservation:
        ref = self._ref(account_id)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            doc, update_time = self._read(ref)
            outcome = decide_reservation(
                doc, secret_limit, self._default_limit, self._plan_max, now
            )
            if isinstance(outcome, AtLimit):
                return outcome
            if self._write(ref, doc, update_time, reservation_fields(outcome.usage_today, now)):
                return outcome
            self._pause(attempt)
        return Contended(attempts=MAX_ATTEMPTS)

    def mark_exhausted(self, account_id: str, secret_limit: int | None, now: datetime) -> bool:
        ref = self._ref(account_id)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            doc, update_time = self._read(ref)
            fields = exhausted_fields(doc, secret_limit, self._default_limit, self._plan_max, now)
            if self._write(ref, doc, update_time, fields):
                return True
            self._pause(attempt)
        return False

    # -- one round's I/O; tests replace these to inject races and faults -------------------

    def _ref(self, account_id: str) -> Any:
        return self._client.get().collection(self._collection).document(account_id)

    def _read(self, ref: Any) -> tuple[dict[str, Any] | None, datetime | None]:
        """The document and the version to write against; (None, None) when it is missing."""
        try:
            snapshot = ref.get(retry=bounded(self._timeout_s), timeout=self._timeout_s)
        except errors().GoogleAPIError as exc:
            raise unavailable("read", exc) from None
        if not snapshot.exists:
            return None, None
        return snapshot.to_dict() or {}, snapshot.update_time

    def _write(
        self,
        ref: Any,
        doc: dict[str, Any] | None,
        update_time: datetime | None,
        fields: dict[str, Any],
    ) -> bool:
        """Commits `fields` on exactly the version read: True when committed, False when a
        racer's write came first. The client's own transient retry is safe here: a replayed
        commit either applies once or fails its precondition, never applies twice."""
        try:
            if doc is None:
                ref.create(fields, retry=bounded(self._timeout_s), timeout=self._timeout_s)
            else:
                ref.update(
                    fields,
                    option=self._client.get().write_option(last_update_time=update_time),
                    retry=bounded(self._timeout_s),
                    timeout=self._timeout_s,
                )
        except update_lost():  # AlreadyExists is a Conflict: a racer created the document first
            return False
        except errors().GoogleAPIError as exc:
            raise unavailable("write", exc) from None  # ambiguous: counted as not reserved
        return True

    def _pause(self, attempt: int) -> None:
        if attempt < MAX_ATTEMPTS:  # no pause before giving up
            self._sleep(self._rng.uniform(*JITTER_S))


class MemoryUsageStore:
    """The same reservations kept in this instance's memory (`record` mode and local runs,
    §14): same documents, same limits and windows, but no other instance sees them.

    A lock makes each read-decide-write atomic, so it never loses a race and never returns
    `Contended`; `mark_exhausted` always writes.
    """

    def __init__(
        self,
        default_limit: int,
        plan_max: int,
        documents: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """`documents` seeds usage documents by account id (copied), e.g. counts carried over
        from an earlier local run."""
        self._default_limit = default_limit
        self._plan_max = plan_max
        self._docs: dict[str, dict[str, Any]] = {
            account_id: copy.deepcopy(dict(doc)) for account_id, doc in (documents or {}).items()
        }
        self._lock = threading.Lock()

    def reserve(self, account_id: str, secret_limit: int | None, now: datetime) -> Reservation:
        with self._lock:
            doc = self._docs.get(account_id)
            outcome = decide_reservation(
                doc, secret_limit, self._default_limit, self._plan_max, now
            )
            if isinstance(outcome, Reserved):
                self._docs.setdefault(account_id, {}).update(
                    reservation_fields(outcome.usage_today, now)
                )
            return outcome

    def mark_exhausted(self, account_id: str, secret_limit: int | None, now: datetime) -> bool:
        with self._lock:
            doc = self._docs.get(account_id)
            fields = exhausted_fields(doc, secret_limit, self._default_limit, self._plan_max, now)
            self._docs.setdefault(account_id, {}).update(fields)
            return True

    def document(self, account_id: str) -> dict[str, Any] | None:
        """A copy of the account's usage document as a Firestore store would hold it."""
        with self._lock:
            doc = self._docs.get(account_id)
            return None if doc is None else copy.deepcopy(doc)
