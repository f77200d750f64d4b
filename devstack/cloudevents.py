"""Builders for the CloudEvents Eventarc delivers for Firestore document updates.

Eventarc uses binary content mode: CloudEvent attributes travel as `ce-*` headers and the body
is a serialized `google.events.cloud.firestore.v1.DocumentEventData` protobuf.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.events.cloud.firestore import (
    ArrayValue,
    Document,
    DocumentEventData,
    DocumentMask,
    MapValue,
    Value,
)
from google.protobuf import struct_pb2

UPDATED = "google.cloud.firestore.document.v1.updated"
CREATED = "google.cloud.firestore.document.v1.created"
WRITTEN = "google.cloud.firestore.document.v1.written"
DATASCHEMA = (
    "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/"
    "cloud/firestore/v1/data.proto"
)


def to_value(value: Any) -> Value:
    """Convert a plain Python value to a Firestore event `Value`."""
    if value is None:
        return Value(null_value=struct_pb2.NullValue.NULL_VALUE)
    if isinstance(value, bool):  # before int: bool is an int subclass
        return Value(boolean_value=value)
    if isinstance(value, int):
        return Value(integer_value=value)
    if isinstance(value, float):
        return Value(double_value=value)
    if isinstance(value, str):
        return Value(string_value=value)
    if isinstance(value, bytes):
        return Value(bytes_value=value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return Value(timestamp_value=aware)
    if isinstance(value, Mapping):
        return Value(map_value=MapValue(fields=to_fields(value)))
    if isinstance(value, Sequence):
        return Value(array_value=ArrayValue(values=[to_value(v) for v in value]))
    raise TypeError(f"cannot encode {type(value).__name__} as a Firestore value")


def to_fields(data: Mapping[str, Any]) -> dict[str, Value]:
    """Convert a plain dict to Firestore document fields."""
    return {str(key): to_value(val) for key, val in data.items()}


def from_value(value: Value) -> Any:
    """Inverse of `to_value`; timestamps come back as tz-aware UTC datetimes."""
    kind = Value.pb(value).WhichOneof("value_type")
    if kind is None or kind == "null_value":
        return None
    if kind == "map_value":
        return from_fields(value.map_value.fields)
    if kind == "array_value":
        return [from_value(v) for v in value.array_value.values]
    if kind == "timestamp_value":
        return value.timestamp_value  # proto-plus gives DatetimeWithNanoseconds (UTC)
    return getattr(value, kind)


def from_fields(fields: Mapping[str, Value]) -> dict[str, Any]:
    return {key: from_value(val) for key, val in fields.items()}


def document_name(project: str, database: str, collection: str, doc_id: str) -> str:
    return f"projects/{project}/databases/{database}/documents/{collection}/{doc_id}"


def _document(
    name: str, data: Mapping[str, Any], create_time: datetime, update_time: datetime
) -> Document:
    return Document(
        name=name, fields=to_fields(data), create_time=create_time, update_time=update_time
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def firestore_update_event(
    *,
    project: str,
    run_id: str,
    document: Mapping[str, Any] | None,
    database: str = "(default)",
    collection: str = "flow_runs",
    subject: str | None = None,
    event_id: str | None = None,
    event_type: str = UPDATED,
    old_document: Mapping[str, Any] | None = None,
    update_mask: Sequence[str] | None = None,
    location: str = "nam5",
    update_time: datetime | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and protobuf body of one Eventarc Firestore event in binary content mode.

    `subject` replaces the whole `ce-subject` (for invalid-subject tests); `document=None`
    leaves `value` unset, as in a delete event.
    """
    now = update_time or datetime.now(UTC)
    created = now - timedelta(minutes=5)
    name = document_name(project, database, collection, run_id)
    data = DocumentEventData()
    if document is not None:
        data.value = _document(name, document, created, now)
    if old_document is not None:
        data.old_value = _document(name, old_document, created, now - timedelta(seconds=1))
    if update_mask is not None:
        data.update_mask = DocumentMask(field_paths=list(update_mask))
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id or uuid.uuid4().hex,
        "ce-source": f"//firestore.googleapis.com/projects/{project}/databases/{database}",
        "ce-type": event_type,
        "ce-subject": subject if subject is not None else f"documents/{collection}/{run_id}",
        "ce-time": _rfc3339(now),
        "ce-dataschema": DATASCHEMA,
        # Firestore extension attributes set by Eventarc.
        "ce-project": project,
        "ce-database": database,
        "ce-namespace": "(default)",
        "ce-document": f"{collection}/{run_id}",
        "ce-location": location,
        "Content-Type": "application/protobuf",
    }
    return headers, DocumentEventData.serialize(data)


def firestore_created_event(
    *,
    project: str,
    collection: str,
    doc_id: str,
    document: Mapping[str, Any] | None,
    event_type: str = CREATED,
    **attributes: Any,
) -> tuple[dict[str, str], bytes]:
    """A `created` (or, with `event_type`, `written`) event for any collection: the new document
    as the value, no old value and no mask, as Eventarc sends for a document's creation."""
    return firestore_update_event(
        project=project,
        run_id=doc_id,
        document=document,
        collection=collection,
        event_type=event_type,
        **attributes,
    )


def decode_event(body: bytes) -> DocumentEventData:
    event: DocumentEventData = DocumentEventData.deserialize(body)
    return event


def decode_document_fields(body: bytes) -> dict[str, Any]:
    """Plain-dict fields of the post-update document (`value`) in an event body."""
    return from_fields(decode_event(body).value.fields)
