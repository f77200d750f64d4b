"""Structured event logging with the safety gates built in (SPEC §13, CHART_EXPORT §15).

One JSON line per event on stdout (Cloud Logging `jsonPayload`). The logger itself refuses
payloads that could carry secrets, prompts or model output: keys with dangerous names are
rejected, every value is bounded, and a record whose serialized form contains a configured
secret value is replaced by `log_record_suppressed`. It never raises into the worker: a logging
bug must not leave a claimed unit RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any

import msgspec

from engine.clock import rfc3339, utc_now

SEVERITIES = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
MAX_STRING = 4096
MAX_ITEMS = 200
MAX_DEPTH = 12
# Compared without case, '_' or '-': `api_key`, `apiKey` and `API-KEY` are one name.
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
# Events the engine itself emits for every worker, and the fields each must carry.
ENGINE_CATALOG: dict[str, tuple[str, ...]] = {
    "cloud_event_received": ("eventType", "subject"),
    "cloud_event_ignored": ("reason",),
    "cloud_event_noop": ("reason",),
    "cloud_event_finished": ("status",),
    "worker_configured": (),
    "config_invalid": ("variable",),
    "worker_exception": ("state", "exceptionType"),
    "probe_failed": ("exceptionType",),
    "claim_outcome_unknown": ("claimStartedAt",),
    "log_emit_failed": (),
    "log_record_suppressed": (),
}

_lock = threading.Lock()
_encoder = msgspec.json.Encoder()


def normalized_key(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


@dataclass(frozen=True)
class LogProfile:
    """What differs between workers: the service name, the event catalogue, more forbidden
    keys, the context fields every line carries (in order), and secret values to gate."""

    service: str
    catalog: Mapping[str, tuple[str, ...]]
    forbidden: frozenset[str] = FORBIDDEN_KEYS
    context: tuple[str, ...] = ("eventId",)
    required: tuple[str, ...] = ("eventId",)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def with_secrets(self, values: Iterable[str]) -> LogProfile:
        """The same profile, also gating these values (and their JSON-escaped forms)."""
        forms = {
            form
            for value in values
            if len(value) >= 4
            for form in (
                value,
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
            )
        }
        return replace(self, secrets=tuple(sorted(forms)))


def forbidden_keys(
    value: Any, forbidden: frozenset[str] = FORBIDDEN_KEYS, depth: int = 0
) -> list[str]:
    """Names of forbidden keys anywhere in `value` (the names are safe to report)."""
    found: list[str] = []
    if depth > MAX_DEPTH:
        return found
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and normalized_key(key) in forbidden:
                found.append(key)
            found.extend(forbidden_keys(item, forbidden, depth + 1))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(forbidden_keys(item, forbidden, depth + 1))
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
        profile: LogProfile,
        *,
        env: str,
        component: str = "worker",
        level: str = "INFO",
        stream: IO[str] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.profile = profile
        self.env = env
        self.component = component
        self.level = level
        self._threshold = SEVERITIES.get(level, 20)
        self._stream = stream
        self._context = dict(context or {})

    def bind(self, **context: Any) -> EventLogger:
        merged = {**self._context, **{k: v for k, v in context.items() if v is not None}}
        return EventLogger(
            self.profile,
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
            line = _encoder.encode(self._entry(event, severity, message, fields)).decode()
            if any(secret in line for secret in self.profile.secrets):
                line = self._suppressed(event)
            self._write(line)
        except Exception:
            with contextlib.suppress(Exception):
                self._write(self._bare("log_emit_failed", "ERROR"))

    def _bare(self, event: str, severity: str) -> str:
        return _encoder.encode(
            {"service": self.profile.service, "event": event, "severity": severity}
        ).decode()

    def _suppressed(self, event: str) -> str:
        """The event's name only: the record held a configured secret value somewhere."""
        return _encoder.encode(
            {
                "service": self.profile.service,
                "env": self.env,
                "component": self.component,
                "event": "log_record_suppressed",
                "severity": "ERROR",
                "message": "log_record_suppressed",
                "time": rfc3339(utc_now()),
                "suppressedEvent": event,
            }
        ).decode()

    def _entry(
        self, event: str, severity: str, message: str | None, fields: dict[str, Any]
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "service": self.profile.service,
            "env": self.env,
            "component": self.component,
            "event": event,
            "severity": severity,
            "message": message or event,
            "time": rfc3339(utc_now()),
        }
        context = {**self._context}
        trace = context.pop("trace", None)
        for key in self.profile.context:
            if key in context:
                entry[key] = context.pop(key)
        for key in self.profile.required:
            entry.setdefault(key, None)
        entry.update(context)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        required = self.profile.catalog.get(event)
        if required is None:
            entry["uncatalogued"] = True
        else:
            missing = [f for f in required if f not in fields and f not in entry]
            if missing:
                entry["missingFields"] = missing
        rejected = forbidden_keys(fields, self.profile.forbidden)
        if rejected:
            entry["severity"] = "ERROR"
            entry["payloadRejected"] = sorted(set(rejected))
            return entry
        for key, value in fields.items():
            entry[key] = bounded(value)
        return entry

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stdout
        with _lock:
            stream.write(line + "\n")
            stream.flush()
