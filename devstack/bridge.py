"""Eventarc for the local stack: Firestore emulator changes become CloudEvents for the function.

In the cloud, every write to a watched collection reaches each function whose trigger matches it
as a binary-mode protobuf CloudEvent, at least once, in no guaranteed order, on any instance.
`EventBridge` reproduces one such trigger locally: it listens to the collection on the emulator,
turns each ADDED or MODIFIED change the trigger hears (`event_type`: created, updated or
written) into the event Eventarc would send, and POSTs it round-robin to several function URLs,
retrying failures. Two workers on one collection are two bridges, as they are two triggers.
Fault flags (duplicates, random delays, reordering) make the races of production happen on a
laptop, so the worker's exactly-once claim is exercised rather than assumed.

Threads: the Firestore listener callback runs on the client's stream thread and only enqueues;
one dispatcher thread owns buffering and shuffling; a small pool does the (racing) deliveries.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from devstack.cloudevents import UPDATED, firestore_update_event
from devstack.services import post_event

if TYPE_CHECKING:
    from google.cloud import firestore

CREATED = "google.cloud.firestore.document.v1.created"
WRITTEN = "google.cloud.firestore.document.v1.written"
_TYPE_OF_CHANGE = {"ADDED": CREATED, "MODIFIED": UPDATED}
# What an Eventarc trigger filtered on one event type hears of each listener change kind.
_TRIGGER_HEARS = {
    CREATED: frozenset({"ADDED"}),
    UPDATED: frozenset({"MODIFIED"}),
    WRITTEN: frozenset({"ADDED", "MODIFIED"}),
}
# Eventarc retries what looks transient; a 4xx other than these means the event itself is bad.
_RETRYABLE_4XX = frozenset({408, 429})

Post = Callable[[str, Mapping[str, str], bytes, float], int]


@dataclass(frozen=True)
class Attempt:
    """One POST of one copy of one event (retries are separate attempts)."""

    event_id: str
    event_type: str
    run_id: str
    copy: int  # 1..duplicate: copies share the event id, as Eventarc redeliveries do
    attempt: int  # 1 for the first try of a copy
    url: str
    status: int | None  # None when the connection failed
    error: str | None  # exception class name for connection failures
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class BridgeStats:
    """Counters for the summary line and for tests; `by_status` keys are "200", "error", ..."""

    events_seen: int = 0  # ADDED/MODIFIED changes turned into CloudEvents
    events_skipped: int = 0  # initial snapshot (unless deliver_existing), REMOVED, unheard kinds
    deliveries: int = 0  # POST attempts, retries included
    delivered: int = 0  # copies acknowledged with a 2xx
    failures: int = 0  # attempts without a 2xx (connection error, 4xx, 5xx)
    gave_up: int = 0  # copies never acknowledged after all retries (or cancelled by stop)
    by_status: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_status.items())) or "none"
        return (
            f"events seen {self.events_seen} (skipped {self.events_skipped}), "
            f"POSTs {self.deliveries} ({statuses}), delivered {self.delivered}, "
            f"failures {self.failures}, gave up {self.gave_up}"
        )


@dataclass(frozen=True)
class _Event:
    event_id: str
    event_type: str
    run_id: str
    document: dict[str, Any]
    old_document: dict[str, Any] | None
    update_time: datetime | None


_STOP = object()


def _default_post(url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> int:
    return post_event(url, headers, body, timeout=timeout)


def _plain(value: Any) -> Any:
    """Listener values the event encoder lacks (GeoPoint, DocumentReference) as plain data.

    The worker treats the event body as a hint and re-reads Firestore, so a lossy rendering of
    exotic field types is harmless; failing the whole event would not be.
    """
    if value is None or isinstance(value, bool | int | float | str | bytes | datetime):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "latitude") and hasattr(value, "longitude"):
        return {"latitude": value.latitude, "longitude": value.longitude}
    path = getattr(value, "path", None)
    return path if isinstance(path, str) else str(value)


class EventBridge:
    """Plays Eventarc: Firestore listener → binary-mode CloudEvents → function URLs."""

    def __init__(
        self,
        *,
        db: firestore.Client,
        function_urls: list[str],
        project: str,
        database: str = "(default)",
        collection: str = "flow_runs",
        duplicate: int = 1,
        delay: float = 0.0,
        reorder_window: int = 0,
        seed: int | None = None,
        log: Callable[[str], None] | None = None,
        deliver_existing: bool = False,
        retries: int = 3,
        backoff: float = 0.2,
        workers: int | None = None,
        flush_interval: float = 0.25,
        post_timeout: float = 60.0,
        ready_timeout: float = 30.0,
        post: Post | None = None,
        event_type: str | None = None,
    ) -> None:
        if not function_urls:
            raise ValueError("function_urls must name at least one function")
        if duplicate < 1:
            raise ValueError("duplicate must be >= 1")
        if delay < 0 or reorder_window < 0 or retries < 0:
            raise ValueError("delay, reorder_window and retries must not be negative")
        if event_type is not None and event_type not in _TRIGGER_HEARS:
            raise ValueError(f"event_type must be one of {sorted(_TRIGGER_HEARS)}")
        self._db = db
        # None: every ADDED/MODIFIED as created/updated (a trigger per kind); otherwise the
        # one type a deployed trigger is filtered on, and only the changes it would hear.
        self.event_type = event_type
        self.function_urls = list(function_urls)
        self.project = project
        self.database = database
        self.collection = collection
        self.duplicate = duplicate
        self.delay = delay
        self.reorder_window = reorder_window
        self._log = log
        self._deliver_existing = deliver_existing
        self._retries = retries
        self._backoff = backoff
        self._workers = workers or max(4, min(16, 2 * duplicate))
        self._flush_interval = flush_interval
        self._post_timeout = post_timeout
        self._ready_timeout = ready_timeout
        self._post: Post = post or _default_post
        self._rng = random.Random(seed)  # only the dispatcher thread draws from it

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._urls = itertools.cycle(self.function_urls)
        self._inbox: queue.Queue[object] = queue.Queue()
        self._abort = threading.Event()  # wakes delays/backoffs when stopping without draining
        self._initial = threading.Event()
        self._closed = False
        self._started = False
        self._outstanding = 0  # events queued or buffered + copies not finished
        self._last_event_at = 0.0
        self._known: dict[str, dict[str, Any]] = {}  # last data per doc: the next old_value
        self._seen_at: dict[str, datetime] = {}
        self._attempts: list[Attempt] = []
        self._counts: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._watch: Any = None
        self._dispatcher: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> EventBridge:
        """Subscribe and wait for the initial snapshot, so later writes are never missed."""
        if self._started:
            raise RuntimeError("EventBridge can only be started once")
        self._started = True
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="bridge-deliver")
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="bridge-dispatch", daemon=True
        )
        self._dispatcher.start()
        self._watch = self._db.collection(self.collection).on_snapshot(self._on_snapshot)
        if not self._initial.wait(self._ready_timeout):
            self.stop(drain=False)
            raise RuntimeError(
                f"no initial snapshot of {self.collection!r} within {self._ready_timeout:.0f}s"
            )
        return self

    def stop(self, drain: bool = True) -> None:
        """Unsubscribe, then deliver what is pending (`drain`) or cancel it; join threads.

        Idempotent. Deliveries already on the wire finish (bounded by the POST timeout).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True  # from here the listener callback enqueues nothing
        if self._watch is not None:
            with contextlib.suppress(Exception):
                self._watch.unsubscribe()
            self._watch = None
        if not drain:
            self._abort.set()
        self._inbox.put(_STOP)
        if self._dispatcher is not None:
            self._dispatcher.join()
            self._dispatcher = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=not drain)
            self._pool = None

    def __enter__(self) -> EventBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------------

    @property
    def stats(self) -> BridgeStats:
        with self._lock:
            c = self._counts
            return BridgeStats(
                events_seen=c["seen"],
                events_skipped=c["skipped"],
                deliveries=c["deliveries"],
                delivered=c["delivered"],
                failures=c["failures"],
                gave_up=c["gave_up"],
                by_status=dict(self._by_status),
            )

    @property
    def attempts(self) -> list[Attempt]:
        """Every POST so far, in completion order."""
        with self._lock:
            return list(self._attempts)

    def last_seen(self, doc_id: str) -> datetime | None:
        """Update time of the last change of `doc_id` the listener reported (skipped or not)."""
        with self._lock:
            return self._seen_at.get(doc_id)

    def wait_idle(self, timeout: float = 10.0, quiet: float = 0.0) -> bool:
        """True once nothing is queued, buffered or in flight and no change came for `quiet` s.

        `quiet` (counted from this call at the earliest) covers the listener's own latency: a
        write committed just now may not have reached the callback yet.
        """
        called = time.monotonic()
        deadline = called + timeout
        with self._idle:
            while True:
                now = time.monotonic()
                calm_for = now - max(self._last_event_at, called)
                if self._outstanding == 0 and calm_for >= quiet:
                    return True
                if now >= deadline:
                    return False
                wait = deadline - now
                if self._outstanding == 0:
                    wait = min(wait, quiet - calm_for)
                self._idle.wait(max(0.01, wait))

    # -- listener thread: record and enqueue, nothing slow ------------------------------

    def _on_snapshot(self, _docs: list[Any], changes: list[Any], _read_time: Any) -> None:
        try:
            self._take(changes)
        except Exception as exc:  # an exception here would kill the client's stream thread
            self._say(f"listener callback failed: {type(exc).__name__}")
        finally:
            self._initial.set()

    def _take(self, changes: list[Any]) -> None:
        initial = not self._initial.is_set()
        for change in changes:
            kind = change.type.name
            doc = change.document
            with self._lock:
                if self._closed:
                    return
                if doc.update_time is not None:
                    self._seen_at[doc.id] = doc.update_time
                self._last_event_at = time.monotonic()
                if kind == "REMOVED":
                    self._known.pop(doc.id, None)
                    self._counts["skipped"] += 1
                    continue
                data = _plain(doc.to_dict() or {})
                old = self._known.get(doc.id)
                self._known[doc.id] = data
                heard = self.event_type is None or kind in _TRIGGER_HEARS[self.event_type]
                if not heard or (initial and not self._deliver_existing):
                    self._counts["skipped"] += 1
                    continue
                self._counts["seen"] += 1
                self._outstanding += 1
                # Under the lock, so `stop` cannot slip its sentinel in ahead of this event.
                self._inbox.put(
                    _Event(
                        event_id=uuid.uuid4().hex,
                        event_type=self.event_type or _TYPE_OF_CHANGE[kind],
                        run_id=doc.id,
                        document=data,
                        old_document=old,
                        update_time=doc.update_time,
                    )
                )

    # -- dispatcher thread: reorder window, duplicates, delays ---------------------------

    def _dispatch_loop(self) -> None:
        buffer: list[_Event] = []
        flush_at: float | None = None
        window = max(1, self.reorder_window)
        while True:
            timeout = None if flush_at is None else max(0.0, flush_at - time.monotonic())
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                if self._abort.is_set():
                    self._release(len(buffer))
                else:
                    self._flush(buffer)
                return
            if isinstance(item, _Event):
                buffer.append(item)
                if flush_at is None:
                    flush_at = time.monotonic() + self._flush_interval
            due = flush_at is not None and time.monotonic() >= flush_at
            if buffer and (len(buffer) >= window or due):
                self._flush(buffer)
                buffer, flush_at = [], None

    def _flush(self, events: list[_Event]) -> None:
        copies: list[tuple[_Event, dict[str, str], bytes, int]] = []
        encoded = 0
        for event in events:
            try:
                headers, body = firestore_update_event(
                    project=self.project,
                    run_id=event.run_id,
                    document=event.document,
                    old_document=event.old_document,
                    database=self.database,
                    collection=self.collection,
                    event_id=event.event_id,
                    event_type=event.event_type,
                    update_time=event.update_time,
                )
            except (TypeError, ValueError) as exc:
                self._say(f"{event.event_id[:12]} {event.run_id}: not encodable ({exc})")
                with self._lock:
                    self._counts["gave_up"] += 1
                self._release(1)
                continue
            copies.extend((event, headers, body, n) for n in range(1, self.duplicate + 1))
            encoded += 1
        if self.reorder_window > 1:
            self._rng.shuffle(copies)
        with self._lock:
            self._outstanding += len(copies)  # the copies now stand for their events
        self._release(encoded)
        pool = self._pool
        assert pool is not None  # `stop` shuts the pool down only after joining this thread
        for event, headers, body, n in copies:
            wait = self._rng.uniform(0.0, self.delay) if self.delay > 0 else 0.0
            future: Future[None] = pool.submit(self._deliver, event, headers, body, n, wait)
            future.add_done_callback(self._copy_done)

    def _copy_done(self, future: Future[None]) -> None:
        if future.cancelled():  # `stop(drain=False)` dropped it before it ran
            self._give_up()
        elif future.exception() is not None:
            self._say(f"delivery crashed: {type(future.exception()).__name__}")
            self._give_up()
        self._release(1)

    def _release(self, count: int) -> None:
        if count <= 0:
            return
        with self._idle:
            self._outstanding -= count
            self._idle.notify_all()

    # -- pool threads: POST with retries -------------------------------------------------

    def _next_url(self) -> str:
        with self._lock:
            return next(self._urls)

    def _deliver(
        self, event: _Event, headers: dict[str, str], body: bytes, copy: int, wait: float
    ) -> None:
        if wait > 0 and self._abort.wait(wait):
            self._give_up()
            return
        for attempt in range(1, self._retries + 2):
            url = self._next_url()
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            try:
                status = self._post(url, headers, body, self._post_timeout)
            except requests.RequestException as exc:
                error = type(exc).__name__
            record = Attempt(
                event_id=event.event_id,
                event_type=event.event_type,
                run_id=event.run_id,
                copy=copy,
                attempt=attempt,
                url=url,
                status=status,
                error=error,
                seconds=time.monotonic() - started,
            )
            self._record(record)
            if record.ok:
                return
            retryable = status is None or status >= 500 or status in _RETRYABLE_4XX
            if not retryable or attempt > self._retries:
                break
            pause = self._backoff * 2 ** (attempt - 1)
            if self._abort.wait(pause):
                break
        self._give_up()

    def _give_up(self) -> None:
        with self._lock:
            self._counts["gave_up"] += 1

    def _record(self, record: Attempt) -> None:
        with self._lock:
            self._attempts.append(record)
            self._counts["deliveries"] += 1
            self._counts["delivered" if record.ok else "failures"] += 1
            self._by_status[str(record.status) if record.status is not None else "error"] += 1
        kind = record.event_type.rsplit(".", 1)[-1]
        outcome = record.status if record.status is not None else record.error
        copy = f" copy {record.copy}/{self.duplicate}" if self.duplicate > 1 else ""
        retry = f" try {record.attempt}" if record.attempt > 1 else ""
        target = urlsplit(record.url).port or record.url
        self._say(
            f"{record.event_id[:12]} {kind} {self.collection}/{record.run_id}{copy}{retry}"
            f" -> :{target} {outcome} ({record.seconds * 1000:.0f} ms)"
        )

    def _say(self, line: str) -> None:
        if self._log is not None:
            with contextlib.suppress(Exception):
                self._log(line)
