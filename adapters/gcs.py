"""Cloud Storage: bounded reads of upstream artifacts and create-only artifact writes.

The client is created on first use, once per process: importing and creating it costs most of a
second, and most events never touch storage.
"""

from __future__ import annotations

import functools
import threading
import zlib
from datetime import datetime
from typing import Any

from adapters.google import errors
from engine.errors import Shared, StoreUnavailable
from engine.ports import BlobNotFound, BlobTooLarge, BlobUndecodable

READ_TIMEOUT_S = 20.0
UPLOAD_TIMEOUT_S = 60.0


@functools.cache
def retry(timeout_s: float) -> Any:
    """The library's transient-error retry, capped at the spec's timeout for the whole call
    (its default deadline is 120 s). Retrying the create-only upload is safe: a 412 means it
    landed."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(timeout_s)


def faults() -> tuple[type[BaseException], ...]:
    return (errors().GoogleAPIError, OSError)


def unavailable(what: str, exc: BaseException) -> StoreUnavailable:
    code = Shared.GCS_WRITE_FAILED if what == "write" else Shared.GCS_READ_FAILED
    return StoreUnavailable(code, f"gcs {what} failed: {type(exc).__name__}")


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://"):
        raise BlobNotFound(uri)
    bucket, _, name = uri[5:].partition("/")
    if not bucket or not name:
        raise BlobNotFound(uri)
    return bucket, name


def _gunzip(uri: str, data: bytes, limit: int) -> bytes:
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer
    try:
        decoded = decoder.decompress(data, limit + 1)
    except zlib.error:
        raise BlobUndecodable(uri) from None
    if len(decoded) > limit:
        raise BlobTooLarge(uri)
    return decoded


@functools.cache
def client(project: str | None) -> Any:
    from google.cloud import storage  # type: ignore[attr-defined]

    return storage.Client(project=project)


class GcsBlobStore:
    def __init__(self, project: str | None = None, *, given: Any = None) -> None:
        self._project = project
        self._client = given
        self._lock = threading.Lock()

    def _blob(self, uri: str) -> Any:
        bucket, name = split_uri(uri)
        with self._lock:
            if self._client is None:
                self._client = client(self._project)
        return self._client.bucket(bucket).blob(name)

    def read(self, uri: str, limit: int) -> bytes:
        """Ranged read of stored bytes 0..limit: one byte past the limit proves the object too
        large.

        Raw: Cloud Storage would otherwise decompress a gzip-encoded object on the way and
        ignore the range, so a small object could expand to any size in memory. A gzip object
        is decoded here instead, and decoding stops one byte past the limit too."""
        blob = self._blob(uri)
        try:
            data: bytes = blob.download_as_bytes(
                start=0,
                end=limit,
                raw_download=True,
                timeout=READ_TIMEOUT_S,
                retry=retry(READ_TIMEOUT_S),
            )
        except errors().NotFound:
            raise BlobNotFound(uri) from None
        except errors().RequestRangeNotSatisfiable:
            return b""  # an empty object has no byte 0
        except faults() as exc:
            raise unavailable("read", exc) from None
        if len(data) > limit:
            raise BlobTooLarge(uri)
        if (blob.content_encoding or "").lower() == "gzip":
            data = _gunzip(uri, data, limit)
        return data

    def exists(self, uri: str) -> bool:
        try:
            return bool(self._blob(uri).exists(timeout=READ_TIMEOUT_S, retry=retry(READ_TIMEOUT_S)))
        except faults() as exc:
            raise unavailable("read", exc) from None

    def created(self, uri: str) -> datetime | None:
        blob = self._blob(uri)
        try:
            blob.reload(timeout=READ_TIMEOUT_S, retry=retry(READ_TIMEOUT_S))
        except errors().NotFound:
            return None
        except faults() as exc:
            raise unavailable("read", exc) from None
        moment: datetime | None = blob.time_created
        return moment

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        """`if_generation_match=0`: the library's conditional retry is safe, and a 412 means an
        earlier attempt (ours or a twin's) already wrote this deterministic object."""
        try:
            self._blob(uri).upload_from_string(
                data,
                content_type=content_type,
                if_generation_match=0,
                timeout=UPLOAD_TIMEOUT_S,
                retry=retry(UPLOAD_TIMEOUT_S),
            )
        except errors().PreconditionFailed:
            return False
        except faults() as exc:
            raise unavailable("write", exc) from None
        return True
