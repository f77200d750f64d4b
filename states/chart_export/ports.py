"""What the CHART_EXPORT worker needs beyond the engine's ports (CHART_EXPORT §4, §6, §7, §14).

The document store and Cloud Storage are the engine's ports; the renderer (`ChartApi`) and the
quota store (`UsageStore`) are declared beside their rules. Here: the template registry, and the
port bundle as the composition root wires it per mode (real, mock, record). The per-instance
memory the states share between invocations (valid templates, exhausted accounts, cool-downs,
the pacing of attempts) lives in plain objects carried by the ports, so each runner has its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.ports import BlobStore, DocumentStore, JsonObject
from states.chart_export.accounts import AccountBook
from states.chart_export.chart_api import ChartApi, ChartRequest
from states.chart_export.usage import UsageStore


class TemplateSource(Protocol):
    """`chart_templates/{id}` as stored: None when missing. Raises `StoreUnavailable` when the
    read fails or outlives its 10 s timeout (§4). No caching here: the states cache only what
    they found valid."""

    def template(self, template_id: str) -> JsonObject | None: ...


class TemplateCache:
    """Valid templates for the life of the instance (immutable by contract, §4); "not found" and
    "invalid" are never remembered, so a fixed document is picked up by the next event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._valid: dict[str, JsonObject] = {}

    def get(self, template_id: str) -> JsonObject | None:
        with self._lock:
            return self._valid.get(template_id)

    def keep(self, template_id: str, document: JsonObject) -> None:
        with self._lock:
            self._valid[template_id] = document


def always(_request: ChartRequest) -> bool:
    return True


def no_recordings() -> list[str]:
    return []


@dataclass(frozen=True)
class ChartPorts:
    store: DocumentStore
    blobs: BlobStore
    templates: TemplateSource
    chart_api: ChartApi
    usage: UsageStore | None  # None: no attempt reserves quota (mock mode)
    # Whether an attempt for this request needs a reserved account: always in real mode,
    # never in mock mode, only when no fixture replays it in record mode (§14).
    needs_account: Callable[[ChartRequest], bool] = always
    # Fixture files recorded since the last call (record mode), for `chart_api_fixture_recorded`.
    recorded: Callable[[], list[str]] = no_recordings
    # Every wait of the states (backoff, cool-down, spacing, write retries) goes through here, so
    # the in-memory suite runs them in no time and can still see what was waited for.
    sleep: Callable[[float], None] = time.sleep
    template_cache: TemplateCache = field(default_factory=TemplateCache)
    book: AccountBook = field(default_factory=AccountBook)
