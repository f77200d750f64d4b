"""The interfaces through which the engine and the states reach the outside world.

Only what every worker needs is here: documents with preconditioned writes, and blobs with
bounded reads and create-only writes. A worker's own ports (a model, a chart renderer, a
registry) are declared beside its states; `adapters/` implements all of them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

JsonObject = dict[str, Any]
Path = tuple[str, ...]  # a field path, one segment per map key (keys may hold '.' or ':')
Patch = Mapping[Path, Any]  # field paths and the values a write sets there


class _Absent:
    """The value of a field that is not in the document: a claim identity can be "no
    startedAt at all", and a write gated on it must fail once any startedAt appears."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def at(data: Any, path: Path) -> Any:
    """The value at `path`, or ABSENT when a segment is missing or not a map."""
    node = data
    for segment in path:
        if not isinstance(node, Mapping) or segment not in node:
            return ABSENT
        node = node[segment]
    return node


def apply(data: JsonObject, patch: Mapping[Path, Any]) -> None:
    """`patch` applied to `data` in place, as Firestore applies a field update: missing or
    non-map parents become maps, and each value replaces what was at its path."""
    for path, value in patch.items():
        node = data
        *parents, leaf = path
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[leaf] = copy.deepcopy(value)


def holds(data: Any, fields: Mapping[Path, Any]) -> bool:
    """True when every field holds exactly its value (ABSENT: the field is missing)."""
    for path, value in fields.items():
        found = at(data, path)
        if found is ABSENT or value is ABSENT:
            if found is not value:
                return False
        elif found != value:
            return False
    return True


@dataclass(frozen=True)
class Snapshot:
    """A document as read, with the update time that preconditions the next write."""

    data: JsonObject
    update_time: datetime


# Decides a write on the document as freshly read: None lets it go, anything else is what was
# found instead (a status, "MISSING", "<status> (another claim)"). Re-run on every re-read.
Gate = Callable[[JsonObject], str | None]


@dataclass(frozen=True)
class GuardedWrite:
    """Outcome of a read → gate → preconditioned write cycle.

    `committed` is True when our patch landed. Otherwise `observed` is what failed the gate,
    or None when no attempt landed: every one lost a precondition race (`conflict`), or the
    last one erred and a re-read proved it had not landed (`failed`).
    """

    committed: bool
    observed: str | None = None
    failed: bool = False

    @property
    def conflict(self) -> bool:
        return not self.committed and self.observed is None and not self.failed


class DocumentStore(Protocol):
    """Firestore as the workers use it: reads, gated field updates carrying the
    `update_time` precondition (never transactions, never blind writes), create-only
    creations, and equality queries for stale-work scans."""

    def get(self, collection: str, doc_id: str) -> Snapshot | None: ...

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        """Applies `patch` while `gate` passes on a fresh read, retrying lost races within
        `timeout_s`; raises `WriteOutcomeUnknown` when an erring write cannot be settled."""
        ...

    def create(self, collection: str, doc_id: str, data: JsonObject) -> bool:
        """Create-only: True when created, False when the document already existed."""
        ...

    def query(
        self, collection: str, field: str, value: Any, limit: int
    ) -> list[tuple[str, JsonObject]]:
        """Documents whose `field` equals `value` (one equality filter: no composite index)."""
        ...


class BlobNotFound(Exception):
    """The object named by a `gs://` URI does not exist."""


class BlobTooLarge(Exception):
    """The object is larger than the caller's limit (only limit + 1 bytes were fetched)."""


class BlobUndecodable(Exception):
    """The object's stored encoding (gzip) does not decode: bad input, not an outage."""


class BlobStore(Protocol):
    def read(self, uri: str, limit: int) -> bytes:
        """At most `limit` bytes, decoded when stored gzip-encoded; raises BlobTooLarge beyond,
        BlobNotFound if absent, BlobUndecodable if its encoding is corrupt."""
        ...

    def exists(self, uri: str) -> bool: ...

    def created(self, uri: str) -> datetime | None:
        """When the object was created, or None when it does not exist."""
        ...

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        """Create-only write: True when created, False when the object already existed."""
        ...
