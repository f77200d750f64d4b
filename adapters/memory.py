"""Adapters without cloud services: documents in memory, blobs and registries in folders.

`run-local` and the in-memory tests use them; they keep the semantics the real services give
(update times and gates, create-only writes), so the same lifecycle runs on them unchanged.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import Any

from engine.ports import (
    BlobNotFound,
    BlobTooLarge,
    Gate,
    GuardedWrite,
    JsonObject,
    Patch,
    Snapshot,
    apply,
)


class MemoryDocumentStore:
    """Collections of documents in memory, with Firestore's write semantics: every document has
    an update time, updates go through the gate, creations are create-only. Every committed
    write is recorded in `writes`, in order (what `run-local` prints)."""

    def __init__(self, documents: Mapping[str, JsonObject] | None = None) -> None:
        """`documents`: path (`collection/id`) → data."""
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str], tuple[JsonObject, datetime]] = {}
        self._tick = datetime(2000, 1, 1, tzinfo=UTC)
        self.writes: list[JsonObject] = []
        for path, data in (documents or {}).items():
            collection, _, doc_id = path.rpartition("/")
            self.put(collection, doc_id, data)

    def _next_time(self) -> datetime:
        self._tick = max(self._tick + timedelta(microseconds=1), datetime.now(UTC))
        return self._tick

    def put(self, collection: str, doc_id: str, data: JsonObject) -> None:
        """Seeds a document (not a write of the worker: not recorded)."""
        with self._lock:
            self._docs[(collection, doc_id)] = (copy.deepcopy(data), self._next_time())

    def document(self, collection: str, doc_id: str) -> JsonObject | None:
        with self._lock:
            found = self._docs.get((collection, doc_id))
            return copy.deepcopy(found[0]) if found else None

    def get(self, collection: str, doc_id: str) -> Snapshot | None:
        with self._lock:
            found = self._docs.get((collection, doc_id))
            if found is None:
                return None
            return Snapshot(data=copy.deepcopy(found[0]), update_time=found[1])

    def update(
        self, collection: str, doc_id: str, patch: Patch, gate: Gate, timeout_s: float
    ) -> GuardedWrite:
        with self._lock:
            found = self._docs.get((collection, doc_id))
            if found is None:
                return GuardedWrite(committed=False, observed="MISSING")
            data = copy.deepcopy(found[0])
            refused = gate(data)
            if refused is not None:
                return GuardedWrite(committed=False, observed=refused)
            apply(data, patch)
            self._docs[(collection, doc_id)] = (data, self._next_time())
            self.writes.append(
                {
                    "doc": f"{collection}/{doc_id}",
                    "fields": {".".join(path): value for path, value in patch.items()},
                }
            )
            return GuardedWrite(committed=True)

    def create(self, collection: str, doc_id: str, data: JsonObject) -> bool:
        with self._lock:
            if (collection, doc_id) in self._docs:
                return False
            self._docs[(collection, doc_id)] = (copy.deepcopy(data), self._next_time())
            self.writes.append({"doc": f"{collection}/{doc_id}", "created": data})
            return True

    def query(
        self, collection: str, field: str, value: Any, limit: int
    ) -> list[tuple[str, JsonObject]]:
        with self._lock:
            found = [
                (doc_id, copy.deepcopy(data))
                for (coll, doc_id), (data, _) in sorted(self._docs.items())
                if coll == collection and data.get(field) == value
            ]
        return found[:limit]


class FolderDocuments:
    """Registry documents as files: `<root>/<collection>/<id>.json`."""

    def __init__(self, root: FilePath) -> None:
        self.root = root

    def document(self, collection: str, doc_id: str) -> JsonObject | None:
        path = self.root / collection / f"{doc_id}.json"
        if "/" in doc_id or not path.is_file():
            return None
        data: JsonObject = json.loads(path.read_text(encoding="utf-8"))
        return data


class FolderBlobStore:
    """`gs://bucket/path` ↔ `<folder>/bucket/path`. Writes go to `output`; reads look there
    first, then in `inputs`, so a run never modifies the example it reads."""

    def __init__(self, inputs: FilePath, output: FilePath) -> None:
        self.inputs = inputs
        self.output = output

    def _path(self, base: FilePath, uri: str) -> FilePath:
        if not uri.startswith("gs://") or ".." in uri.split("/"):
            raise BlobNotFound(uri)
        return base / uri[5:]

    def local_path(self, uri: str) -> FilePath:
        return self._path(self.output, uri)

    def _find(self, uri: str) -> FilePath:
        for base in (self.output, self.inputs):
            path = self._path(base, uri)
            if path.is_file():
                return path
        raise BlobNotFound(uri)

    def read(self, uri: str, limit: int) -> bytes:
        with self._find(uri).open("rb") as source:
            data = source.read(limit + 1)
        if len(data) > limit:
            raise BlobTooLarge(uri)
        return data

    def exists(self, uri: str) -> bool:
        try:
            self._find(uri)
        except BlobNotFound:
            return False
        return True

    def created(self, uri: str) -> datetime | None:
        try:
            path = self._find(uri)
        except BlobNotFound:
            return None
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        path = self._path(self.output, uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as sink:  # create-only, like if_generation_match=0
                sink.write(data)
        except FileExistsError:
            return False
        return True


class MemoryBlobStore:
    """`gs://` objects in memory, create-only like `if_generation_match=0`: for the in-memory
    tests, where a folder would only add a filesystem to the picture."""

    def __init__(self, objects: Mapping[str, bytes] | None = None) -> None:
        self._lock = threading.Lock()
        self.objects: dict[str, tuple[bytes, datetime]] = {
            uri: (data, datetime.now(UTC)) for uri, data in (objects or {}).items()
        }

    def read(self, uri: str, limit: int) -> bytes:
        with self._lock:
            found = self.objects.get(uri)
        if found is None:
            raise BlobNotFound(uri)
        if len(found[0]) > limit:
            raise BlobTooLarge(uri)
        return found[0]

    def exists(self, uri: str) -> bool:
        with self._lock:
            return uri in self.objects

    def created(self, uri: str) -> datetime | None:
        with self._lock:
            found = self.objects.get(uri)
        return found[1] if found else None

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        with self._lock:
            if uri in self.objects:
                return False
            self.objects[uri] = (data, datetime.now(UTC))
            return True


class FolderBucket:
    """One bucket's objects as files under a folder: `gs://<any bucket>/<name>` ↔ `<root>/<name>`.

    `run-local` reads history CSVs this way (`--history-dir` is the bucket's root), with the
    same bounded-read contract as Cloud Storage; names that would leave the folder are absent.
    """

    def __init__(self, root: FilePath) -> None:
        self.root = root

    def _path(self, uri: str) -> FilePath:
        if not uri.startswith("gs://"):
            raise BlobNotFound(uri)
        _, _, name = uri[5:].partition("/")
        if not name or any(part in ("", ".", "..") for part in name.split("/")):
            raise BlobNotFound(uri)
        return self.root / name

    def read(self, uri: str, limit: int) -> bytes:
        path = self._path(uri)
        try:
            with path.open("rb") as source:
                data = source.read(limit + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(uri) from None
        if len(data) > limit:
            raise BlobTooLarge(uri)
        return data

    def exists(self, uri: str) -> bool:
        try:
            return self._path(uri).is_file()
        except BlobNotFound:
            return False

    def created(self, uri: str) -> datetime | None:
        if not self.exists(uri):
            return None
        return datetime.fromtimestamp(self._path(uri).stat().st_mtime, UTC)

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as sink:
                sink.write(data)
        except FileExistsError:
            return False
        return True
