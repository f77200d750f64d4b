"""Rules for names that become Firestore field paths or Cloud Storage object names.

Checked before any external call: a name Cloud Storage would refuse (or resolve to another
folder) must fail as a configuration error, not after the paid work, as a retryable write error
that every orchestrator retry pays for again.
"""

from __future__ import annotations

import unicodedata

OBJECT_NAME_MAX_BYTES = 1024  # Cloud Storage's limit, in bytes of UTF-8


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def storage_safe_key(key: str) -> bool:
    """A map key usable as one segment of a dotted Firestore field path and of object names."""
    return bool(key) and "." not in key and "/" not in key and not has_control_characters(key)


def object_name_problem(name: str) -> str | None:
    """Why `name` cannot be a Cloud Storage object name of ours, or None when it can."""
    if not name:
        return "is empty"
    if len(name.encode("utf-8")) > OBJECT_NAME_MAX_BYTES:
        return f"exceeds {OBJECT_NAME_MAX_BYTES} bytes of UTF-8"
    if has_control_characters(name):
        return "contains control characters"
    if any(segment in (".", "..") for segment in name.split("/")):
        return "has a '.' or '..' segment"
    return None
