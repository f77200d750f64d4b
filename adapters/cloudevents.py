"""What Eventarc delivers for Firestore document events, turned into an `engine.runner.Event`.

Binary-mode CloudEvent; the body is a protobuf `DocumentEventData`. The subject names the flow
run; the body's document value is only a hint, since Firestore stays the source of truth.
"""

from __future__ import annotations

from typing import Any

from engine.runner import Event


def trace_of(header: Any, project: str | None) -> str | None:
    """`logging.googleapis.com/trace` from a W3C `traceparent` (`00-<trace>-<span>-01`) or an
    `X-Cloud-Trace-Context` (`<trace>/<span>;o=1`) value, when a project is known."""
    if not isinstance(header, str) or not project:
        return None
    parts = header.split("-")
    trace = parts[1] if len(parts) == 4 else header.split("/", 1)[0]
    if len(trace) == 32 and all(c in "0123456789abcdefABCDEF" for c in trace):
        return f"projects/{project}/traces/{trace.lower()}"
    return None


def request_trace_header() -> str | None:
    """The trace header of the HTTP request carrying the event, when serving under Flask."""
    try:
        from flask import request

        return request.headers.get("traceparent") or request.headers.get("X-Cloud-Trace-Context")
    except (ImportError, RuntimeError):  # outside a request context
        return None


def to_event(cloud_event: Any, project: str | None, trace_header: str | None = None) -> Event:
    attributes = cloud_event.get_attributes() if hasattr(cloud_event, "get_attributes") else {}
    return Event(
        event_id=str(attributes.get("id") or ""),
        event_type=str(attributes.get("type") or ""),
        subject=str(attributes.get("subject") or ""),
        trace=trace_of(trace_header or attributes.get("traceparent"), project),
        document=document_name(
            cloud_event.get_data() if hasattr(cloud_event, "get_data") else None
        ),
    )


def document_name(body: Any) -> str | None:
    """The document name carried by a `DocumentEventData` body, or None if it is not one."""
    if not isinstance(body, bytes | bytearray) or not body:
        return None
    from google.events.cloud.firestore_v1.types import DocumentEventData

    try:
        data = DocumentEventData.deserialize(bytes(body))
    except Exception:
        return None
    return data.value.name or data.old_value.name or None
