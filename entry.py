"""Composition root: the Cloud Functions gen2 entry point `on_flow_run_updated`.

Adapters are wired once per instance, on the first event, from the environment (SPEC §14).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import functions_framework
import msgspec

from engine.config import ConfigError, WorkerConfig
from engine.log import EventLogger
from engine.ports import LLM, BlobStore, FlowRunStore, Ports, Registry
from engine.runner import Worker

_lock = threading.Lock()
_worker: Worker | None = None


def _journal(path: str) -> Any:
    """Test-only: appends each committed Firestore write as a JSON line to `path`.

    Enabled solely by WORKER_WRITE_JOURNAL, which production never sets; snapshot tests use it
    to see the ordered writes of a function running in another process.
    """
    lock = threading.Lock()

    def record(entry: dict[str, Any]) -> None:
        with lock, open(path, "ab") as sink:
            sink.write(msgspec.json.encode(entry) + b"\n")

    return record


class _Deferred:
    """Builds an adapter on first use. Importing and creating the Google clients costs over a
    second, and most events (no-ops decided from the event's own document) never need them."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._target: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._target is None:
                self._target = self._build()
        return getattr(self._target, name)


def build_worker(environ: Mapping[str, str] = os.environ) -> Worker:
    try:
        config = WorkerConfig.from_env(environ)
    except ConfigError as exc:  # the message names the variable, never its value
        EventLogger(env=environ.get("ENV", "dev")).error("config_invalid", error=str(exc))
        raise
    journal_path = environ.get("WORKER_WRITE_JOURNAL")

    @functools.cache
    def db() -> Any:
        from google.cloud import firestore

        return firestore.Client(project=config.gcp_project, database=config.firestore_database)

    def store() -> Any:
        from adapters.firestore import FirestoreFlowRunStore

        journal = _journal(journal_path) if journal_path else None
        return FirestoreFlowRunStore(db(), config.flow_runs_collection, journal=journal)

    def registry() -> Any:
        from adapters.firestore import FirestoreRegistry

        return FirestoreRegistry(db(), config.prompts_collection, config.schemas_collection)

    def blobs() -> Any:
        from google.cloud import storage  # type: ignore[attr-defined]

        from adapters.gcs import GcsBlobStore

        return GcsBlobStore(storage.Client(project=config.gcp_project))

    def llm() -> Any:
        from adapters.gemini import GeminiLLM

        return GeminiLLM(config.gemini.api_key)

    ports = Ports(
        store=cast(FlowRunStore, _Deferred(store)),
        registry=cast(Registry, _Deferred(registry)),
        blobs=cast(BlobStore, _Deferred(blobs)),
        llm=cast(LLM, _Deferred(llm)),
    )
    log = EventLogger(env=config.env, level=config.log_level)
    log.info("worker_configured", auth={"mode": config.gemini.mode, "keyId": config.gemini.key_id})
    return Worker(config, ports, log)


def worker() -> Worker:
    global _worker
    with _lock:
        if _worker is None:
            _worker = build_worker()
        return _worker


@functions_framework.http
def recover_stale_steps(request: Any) -> tuple[str, int, dict[str, str]]:
    """Cloud Scheduler target: stale-step recovery over all RUNNING flow runs."""
    started = time.monotonic()
    instance = worker()
    summary = instance.recover_stale(instance.config.stale_lease_s, started=started)
    return msgspec.json.encode(summary).decode(), 200, {"Content-Type": "application/json"}


@functions_framework.cloud_event
def on_flow_run_updated(cloud_event: Any) -> None:
    """Eventarc `google.cloud.firestore.document.v1.updated` on `flow_runs/{runId}`."""
    started = time.monotonic()
    from adapters.cloudevents import request_trace_header, to_event

    instance = worker()
    event = to_event(cloud_event, instance.config.gcp_project, request_trace_header())
    instance.handle(event, started=started)
