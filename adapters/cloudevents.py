"""What Eventarc delivers for Firestore document events, turned into an `engine.runner.Event`.

Binary-mode CloudEvent; the body is a protobuf `DocumentEventData`. The subject names the flow
run; the body's document value is only a hint, since Firestore stays the source of truth.
"""

from __future__ import annotations

from typing import Any

from engine.runner import Event


def trace_of(traceparent: Any, project: str | None) -> str | None:
    """`logging.googleapis.com/trace` from a W3C traceparent, when both are known."""
    if not isinstance(traceparent, str) or not project:
        return None
    parts = traceparent.split("-")
    if len(parts) >= 2 and len(parts[1]) == 32:
        return f"projects/{project}/traces/{parts[1]}"
    return None


def to_event(cloud_event: Any, project: str | None) -> Event:
    attributes = cloud_event.get_attributes() if hasattr(cloud_event, "get_attributes") else {}
    return Event(
        event_id=str(attributes.get("id") or ""),
        event_type=str(attributes.get("type") or ""),
        subject=str(attributes.get("subject") or ""),
        trace=trace_of(attributes.get("traceparent"), project),
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
