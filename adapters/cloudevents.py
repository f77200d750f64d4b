"""What Eventarc delivers for Firestore document events, turned into an `engine.cloudevent.Event`.

Binary-mode CloudEvent; the body is a protobuf `DocumentEventData`. The subject names the
document; the body's document value is only a hint, since Firestore stays the source of truth.
"""

from __future__ import annotations

from typing import Any

from engine.cloudevent import Event


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
    name, value = decode_body(cloud_event.get_data() if hasattr(cloud_event, "get_data") else None)
    return Event(
        event_id=str(attributes.get("id") or ""),
        event_type=str(attributes.get("type") or ""),
        subject=str(attributes.get("subject") or ""),
        trace=trace_of(trace_header or attributes.get("traceparent"), project),
        document=name,
        value=value,
    )


def _plain(value: Any) -> Any:
    """A Firestore `Value` protobuf as plain Python (what the Firestore client would return)."""
    kind = value.WhichOneof("value_type")
    if kind == "map_value":
        return {k: _plain(v) for k, v in value.map_value.fields.items()}
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "timestamp_value":
        return value.timestamp_value.ToJsonString()
    if kind in (None, "null_value"):
        return None
    if kind == "geo_point_value":
        point = value.geo_point_value
        return {"latitude": point.latitude, "longitude": point.longitude}
    return getattr(value, kind)


def decode_body(body: Any) -> tuple[str | None, dict[str, Any] | None]:
    """(document name, new document value) of a `DocumentEventData` body; (None, None) when the
    body is absent or not one. Parsed with the raw protobuf class: the proto-plus wrappers are
    much slower, and this runs on every event."""
    if not isinstance(body, bytes | bytearray) or not body:
        return None, None
    from google.events.cloud.firestore_v1.types import DocumentEventData

    try:
        data = DocumentEventData.pb().FromString(bytes(body))
    except Exception:  # a malformed hint is ignored: the subject decides
        return None, None
    if not data.HasField("value"):
        return data.old_value.name or None, None
    return data.value.name or None, {k: _plain(v) for k, v in data.value.fields.items()}
