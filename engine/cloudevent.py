"""The parts of an Eventarc Firestore CloudEvent the engine uses, and which events it accepts.

The document value inside the event is only a hint: Firestore stays the source of truth, and a
worker may use the hint to end an invocation early as a no-op, nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_KINDS = ("created", "updated", "written")
# COMMON.md §1: every worker accepts these; which one Eventarc sends is the deployment's choice.
ACCEPTED_TYPES = frozenset(
    f"google.cloud.firestore.document.v1.{kind}{suffix}"
    for kind in _KINDS
    for suffix in ("", ".withAuthContext")
)


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    subject: str
    trace: str | None = None
    document: str | None = None  # the full resource name of the document in the body
    value: dict[str, Any] | None = field(default=None, repr=False)


def doc_id_from_subject(subject: str, collection: str, pattern: re.Pattern[str]) -> str | None:
    """The document id: the segment after the one equal to the collection name, when it
    matches the worker's id pattern (SPEC §1, BACKTEST §1)."""
    segments = subject.split("/")
    for index, segment in enumerate(segments[:-1]):
        if segment == collection:
            candidate = segments[index + 1]
            return candidate if pattern.match(candidate) else None
    return None
