"""Structured event logging with the safety gates of SPEC §13 built in.

One JSON line per event on stdout (Cloud Logging `jsonPayload`). The logger itself refuses
payloads that could carry secrets, prompts or model output, bounds every value, and never raises
into the worker: a logging bug must not leave a claimed step RUNNING.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any

import msgspec

from engine.clock import rfc3339, utc_now
from engine.events import CATALOG

SERVICE = "worker_llm_client"
SEVERITIES = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
MAX_STRING = 4096
MAX_ITEMS = 200
MAX_DEPTH = 12
FORBIDDEN_KEYS = frozenset(
    {
        "apikey",
        "token",
        "secret",
        "authorization",
        "credentials",
        "systeminstruction",
        "userprompt",
        "prompttext",
        "candidatetext",
        "rawoutput",
        "outputtext",
    }
)
_CONTEXT_ORDER = ("eventId", "runId", "stepId", "flowKey", "timeframe", "symbol")
_lock = threading.Lock()
_encoder = msgspec.json.Encoder()


def _normalized(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def forbidden_keys(value: Any, depth: int = 0) -> list[str]:
    """Names of forbidden keys anywhere in `value` (the names are safe to report)."""
    found: list[str] = []
    if depth > MAX_DEPTH:
        return found
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and _normalized(key) in FORBIDDEN_KEYS:
                found.append(key)
            found.extend(forbidden_keys(item, depth + 1))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(forbidden_keys(item, depth + 1))
    return found


def bounded(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy: long strings and arrays cut, anything else summarized by type."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "…[truncated]"
    if depth > MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, Mapping):
        return {str(k): bounded(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"…[{len(value) - MAX_ITEMS} more]")
        return items
    if isinstance(value, bytes | bytearray):
        return f"<bytes len={len(value)}>"
    return f"<{type(value).__name__}>"


class EventLogger:
    """Emits catalogued events with the required fields and the bound correlation context."""

    def __init__(
        self,
        *,
        env: str,
        component: str = "worker",
        level: str = "INFO",
        stream: IO[str] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.env = env
        self.component = component
        self.level = level
        self._threshold = SEVERITIES.get(level, 20)
        self._stream = stream
        self._context = dict(context or {})

    def bind(self, **context: Any) -> EventLogger:
        merged = {**self._context, **{k: v for k, v in context.items() if v is not None}}
        return EventLogger(
            env=self.env,
            component=self.component,
            level=self.level,
            stream=self._stream,
            context=merged,
        )

    def debug(self, event: str, **fields: Any) -> None:
        self.emit(event, "DEBUG", **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.emit(event, "INFO", **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.emit(event, "WARNING", **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.emit(event, "ERROR", **fields)

    def emit(
        self, event: str, severity: str = "INFO", message: str | None = None, **fields: Any
    ) -> None:
        try:
            if SEVERITIES.get(severity, 20) < self._threshold:
                return
            self._write(self._entry(event, severity, message, fields))
        except Exception:
            with contextlib.suppress(Exception):
                self._write({"service": SERVICE, "event": "log_emit_failed", "severity": "ERROR"})

    def _entry(
        self, event: str, severity: str, message: str | None, fields: dict[str, Any]
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "service": SERVICE,
            "env": self.env,
            "component": self.component,
            "event": event,
            "severity": severity,
            "message": message or event,
            "time": rfc3339(utc_now()),
        }
        context = {**self._context}
        trace = context.pop("trace", None)
        for key in _CONTEXT_ORDER:
            if key in context:
                entry[key] = context.pop(key)
        entry.setdefault("eventId", None)
        entry.setdefault("runId", None)
        entry.update(context)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        required = CATALOG.get(event)
        if required is None:
            entry["uncatalogued"] = True
        else:
            missing = [f for f in required if f not in fields and f not in entry]
            if missing:
                entry["missingFields"] = missing
        rejected = forbidden_keys(fields)
        if rejected:
            entry["severity"] = "ERROR"
            entry["payloadRejected"] = sorted(set(rejected))
            return entry
        for key, value in fields.items():
            entry[key] = bounded(value)
        return entry

    def _write(self, entry: dict[str, Any]) -> None:
        line = _encoder.encode(entry).decode() + "\n"
        stream = self._stream or sys.stdout
        with _lock:
            stream.write(line)
            stream.flush()
