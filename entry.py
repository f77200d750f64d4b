"""Composition root: the Cloud Functions gen2 entry point `on_flow_run_updated`.

Adapters are wired once per instance, on the first event, from the environment (SPEC §14).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import functions_framework
import msgspec

from engine.config import ConfigError, WorkerConfig
from engine.log import EventLogger
from engine.ports import Ports
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


def build_worker(environ: dict[str, str] | os._Environ[str] = os.environ) -> Worker:
    from google.cloud import firestore, storage  # type: ignore[attr-defined]

    from adapters.firestore import FirestoreFlowRunStore, FirestoreRegistry
    from adapters.gcs import GcsBlobStore
    from adapters.gemini import GeminiLLM

    try:
        config = WorkerConfig.from_env(environ)
    except ConfigError as exc:  # the message names the variable, never its value
        EventLogger(env=environ.get("ENV", "dev")).error("config_invalid", error=str(exc))
        raise
    db = firestore.Client(project=config.gcp_project, database=config.firestore_database)
    journal_path = environ.get("WORKER_WRITE_JOURNAL")
    ports = Ports(
        store=FirestoreFlowRunStore(
            db,
            config.flow_runs_collection,
            journal=_journal(journal_path) if journal_path else None,
        ),
        registry=FirestoreRegistry(db, config.prompts_collection, config.schemas_collection),
        blobs=GcsBlobStore(storage.Client(project=config.gcp_project)),
        llm=GeminiLLM(config.gemini.api_key),
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
