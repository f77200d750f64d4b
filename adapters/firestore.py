"""Firestore: flow run reads, status-gated step writes, and the prompt/schema registries.

No transactions: every write is preceded by a read and carries the precondition
`last_update_time = snapshot.update_time` (SPEC §4). The retry loop is written out rather than
taken from `google.api_core.retry`, because the spec fixes both the attempt count (3 to 5) and the
jittered pause (100 to 500 ms) and wants the status gate re-checked on each re-read, which a
time-bounded, full-jitter Retry does not express.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from engine.contracts import JsonObject
from engine.errors import ErrorCode, StoreUnavailable, WriteOutcomeUnknown
from engine.ports import ABSENT, GuardedWrite, Snapshot

READ_TIMEOUT_S = 10.0
CLAIM_TIMEOUT_S = 10.0
FINALIZE_TIMEOUT_S = 15.0
ATTEMPTS = 4
PAUSE_MIN_S = 0.1  # jittered pause between attempts (SPEC §4: 100 to 500 ms)
PAUSE_MAX_S = 0.5
SCAN_TIMEOUT_S = 60.0


def bounded(total_s: float) -> gretry.Retry:
    """The client's transient-error retry, capped at the spec's timeout for the whole call
    (the default keeps retrying for minutes while Firestore is down)."""
    return gretry.Retry(
        predicate=gretry.if_transient_error,
        initial=0.1,
        maximum=2.0,
        multiplier=2.0,
        timeout=total_s,
    )


LOST_RACE = (gexc.FailedPrecondition, gexc.Aborted, gexc.Conflict)

Journal = Callable[[JsonObject], None]


class FirestoreFlowRunStore:
    """Flow run reads and status-gated step writes.

    The last snapshot seen of each run (read, or produced by our own committed write) is kept,
    so a write can first be attempted against it without another read: the precondition
    alone decides, and a lost race falls back to a fresh read. In the common case the claim
    and the finalize each save a round trip.
    """

    KNOWN_RUNS = 64

    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        journal: Journal | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        claim_timeout_s: float = CLAIM_TIMEOUT_S,
        finalize_timeout_s: float = FINALIZE_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._collection = collection
        self._journal = journal
        self._sleep = sleep
        self._clock = clock
        self._claim_timeout = claim_timeout_s
        self._finalize_timeout = finalize_timeout_s
        self._known: OrderedDict[str, tuple[JsonObject, datetime]] = OrderedDict()
        self._known_lock = threading.Lock()

    def _remember(self, run_id: str, data: JsonObject, update_time: datetime) -> None:
        with self._known_lock:
            self._known[run_id] = (data, update_time)
            self._known.move_to_end(run_id)
            while len(self._known) > self.KNOWN_RUNS:
                self._known.popitem(last=False)

    def _recall(self, run_id: str) -> tuple[JsonObject, datetime] | None:
        with self._known_lock:
            known = self._known.pop(run_id, None)  # used once: a lost race must re-read
        return known

    def _ref(self, run_id: str) -> Any:
        return self._client.collection(self._collection).document(run_id)

    def _read(self, run_id: str, timeout: float = READ_TIMEOUT_S) -> Any:
        timeout = max(0.1, min(READ_TIMEOUT_S, timeout))
        try:
            return self._ref(run_id).get(retry=bounded(timeout), timeout=timeout)
        except gexc.GoogleAPIError as exc:
            raise _unavailable("read", exc) from None

    def load(self, run_id: str) -> Snapshot | None:
        doc = self._read(run_id)
        if not doc.exists:
            return None
        data = doc.to_dict() or {}
        self._remember(run_id, copy.deepcopy(data), doc.update_time)
        return Snapshot(data=data, update_time=doc.update_time)

    def update_step(
        self,
        run_id: str,
        step_id: str,
        expect: str,
        patch: dict[str, Any],
        also: dict[str, Any] | None = None,
    ) -> GuardedWrite:
        """Read, gate, preconditioned write; retried on lost races, all within the call's
        timeout (claim 10 s, finalize 15 s).

        A write that erred may still have landed. From then on only a re-read decides: it finds
        our patch (committed), another status or claim (lost), or the document as we left it
        (not landed: the write may be tried again). When the re-reads themselves keep failing
        until the timeout, the outcome is unknown and `WriteOutcomeUnknown` says so — it is
        never reported as "not written" (COMMON.md §3).
        """
        paths = {rel: ("steps", step_id, *rel.split(".")) for rel in patch}
        identity = {rel: ("steps", step_id, *rel.split(".")) for rel in also or {}}
        timeout = self._claim_timeout if expect == "READY" else self._finalize_timeout
        deadline = self._clock() + timeout
        uncertain = False  # a write of ours erred: it may have landed unseen
        erred = True  # no lost race explains a give-up (cleared when one does)
        writes = 0
        while True:
            known = None if uncertain else self._recall(run_id)
            if known is not None:
                data, update_time = known
            else:
                try:
                    doc = self._read(run_id, self._remaining(deadline))
                except StoreUnavailable:
                    if not uncertain:
                        raise  # nothing of ours was sent: a plain fault
                    if self._remaining(deadline) <= PAUSE_MAX_S:
                        raise WriteOutcomeUnknown(
                            ErrorCode.FIRESTORE_UNAVAILABLE,
                            "firestore write outcome unknown: re-reads failed",
                        ) from None
                    self._pause()
                    continue
                if not doc.exists:
                    return GuardedWrite(committed=False, observed="MISSING")
                data, update_time = doc.to_dict() or {}, doc.update_time
            if uncertain and _landed(data, paths, patch):
                return self._committed(run_id, paths, patch)
            step = (data.get("steps") or {}).get(step_id)
            status = step.get("status") if isinstance(step, dict) else None
            mismatch = status != expect or (also and not _landed(data, identity, also))
            if mismatch and known is not None:
                continue  # decided on a remembered copy: confirm on a fresh read
            if status != expect:
                return GuardedWrite(committed=False, observed=str(status))
            if mismatch:
                return GuardedWrite(committed=False, observed=f"{status} (another claim)")
            # Proven not landed (or never sent): uncertainty is over until the next write.
            uncertain = False
            if writes == ATTEMPTS or self._remaining(deadline) <= 0:
                return GuardedWrite(committed=False, failed=erred)
            writes += 1
            updates = {FieldPath(*paths[rel]).to_api_repr(): value for rel, value in patch.items()}
            call_timeout = max(0.1, min(timeout, self._remaining(deadline)))
            try:
                result = self._ref(run_id).update(
                    updates,
                    option=self._client.write_option(last_update_time=update_time),
                    retry=bounded(call_timeout),
                    timeout=call_timeout,
                )
            except LOST_RACE:
                # Lost to a twin, or our own write landed and its retried commit then failed
                # the precondition: the re-read tells (our patch carries a unique timestamp).
                uncertain, erred = True, False
                if known is not None:
                    continue  # our snapshot was stale, not a race with a twin: re-read now
            except gexc.GoogleAPIError:
                uncertain, erred = True, True
            else:
                _apply(data, paths, patch)
                self._remember(run_id, data, result.update_time)
                return self._committed(run_id, paths, patch)
            self._pause()

    def _remaining(self, deadline: float) -> float:
        return deadline - self._clock()

    def _pause(self) -> None:
        self._sleep(random.uniform(PAUSE_MIN_S, PAUSE_MAX_S))

    def _committed(
        self, run_id: str, paths: dict[str, tuple[str, ...]], patch: dict[str, Any]
    ) -> GuardedWrite:
        if self._journal is not None:
            self._journal(
                {
                    "doc": f"{self._collection}/{run_id}",
                    "fields": {".".join(paths[rel]): value for rel, value in patch.items()},
                }
            )
        return GuardedWrite(committed=True)

    def running_runs(self) -> list[tuple[str, JsonObject]]:
        try:
            docs = list(
                _running_query(self._client, self._collection).stream(
                    retry=bounded(SCAN_TIMEOUT_S), timeout=SCAN_TIMEOUT_S
                )
            )
        except gexc.GoogleAPIError as exc:
            raise _unavailable("query", exc) from None
        return [(doc.id, doc.to_dict() or {}) for doc in docs]

    def set_run_error(self, run_id: str, error: JsonObject) -> bool:
        """Writes `flow_run.error` once; an identical error already there is left alone, so the
        event our own write triggers does not write again."""
        for _ in range(ATTEMPTS):
            doc = self._read(run_id)
            if not doc.exists or (doc.to_dict() or {}).get("error") == error:
                return False
            try:
                self._ref(run_id).update(
                    {"error": error},
                    option=self._client.write_option(last_update_time=doc.update_time),
                    retry=bounded(FINALIZE_TIMEOUT_S),
                    timeout=FINALIZE_TIMEOUT_S,
                )
            except LOST_RACE:
                self._pause()
                continue
            except gexc.GoogleAPIError as exc:
                raise _unavailable("write", exc) from None
            if self._journal is not None:
                self._journal({"doc": f"{self._collection}/{run_id}", "fields": {"error": error}})
            return True
        return False


def _running_query(client: firestore.Client, collection: str) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return client.collection(collection).where(filter=FieldFilter("status", "==", "RUNNING"))


def _unavailable(what: str, exc: Exception) -> StoreUnavailable:
    return StoreUnavailable(
        ErrorCode.FIRESTORE_UNAVAILABLE, f"firestore {what} failed: {type(exc).__name__}"
    )


def _apply(data: JsonObject, paths: dict[str, tuple[str, ...]], patch: dict[str, Any]) -> None:
    """Our committed patch applied to the remembered copy, as Firestore applied it."""
    for rel, value in patch.items():
        node = data
        *parents, leaf = paths[rel]
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[leaf] = copy.deepcopy(value)


def _landed(data: JsonObject, paths: dict[str, tuple[str, ...]], patch: dict[str, Any]) -> bool:
    """True when every patched field already holds our value (our ambiguous write went in);
    `ABSENT` holds where the field is missing."""
    for rel, value in patch.items():
        node: Any = data
        for segment in paths[rel]:
            if not isinstance(node, dict) or segment not in node:
                node = ABSENT
                break
            node = node[segment]
        if node is ABSENT or value is ABSENT:
            if node is not value:
                return False
        elif node != value:
            return False
    return True


class FirestoreRegistry:
    """`llm_prompts` and `llm_schemas`. Their documents are immutable by contract, so each one
    found is cached for the life of the instance; a missing one is asked for again next time."""

    def __init__(self, client: firestore.Client, prompts: str, schemas: str) -> None:
        self._client = client
        self._prompts = prompts
        self._schemas = schemas
        self._cache: dict[tuple[str, str], JsonObject] = {}

    def _get(self, collection: str, doc_id: str) -> JsonObject | None:
        key = (collection, doc_id)
        if key in self._cache:
            return self._cache[key]
        try:
            doc = (
                self._client.collection(collection)
                .document(doc_id)
                .get(retry=bounded(READ_TIMEOUT_S), timeout=READ_TIMEOUT_S)
            )
        except gexc.GoogleAPIError as exc:
            raise _unavailable("read", exc) from None
        if not doc.exists:
            return None
        data = doc.to_dict() or {}
        self._cache[key] = data
        return data

    def prompt(self, prompt_id: str) -> JsonObject | None:
        return self._get(self._prompts, prompt_id)

    def schema(self, schema_id: str) -> JsonObject | None:
        return self._get(self._schemas, schema_id)
