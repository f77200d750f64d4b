"""Chart templates (`chart_templates/{id}`, CHART_EXPORT §4): on Firestore and in folders.

Neither caches: the worker keeps only the templates its checks found valid (`TemplateCache`),
so a missing or invalid document is read again by the next event, once it has been fixed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.firestore import LazyClient, read_data
from engine.ports import JsonObject

READ_TIMEOUT_S = 10.0  # §4: template reads time out after 10 s


class FirestoreTemplates:
    """Reads with the spec's timeout; a failure or a timeout is `StoreUnavailable`
    (FIRESTORE_UNAVAILABLE for that request)."""

    def __init__(
        self, project: str | None, database: str, collection: str, *, given: Any = None
    ) -> None:
        self._client = LazyClient(project, database, given)
        self._collection = collection

    def template(self, template_id: str) -> JsonObject | None:
        return read_data(self._client, self._collection, template_id, READ_TIMEOUT_S)


class FolderTemplates:
    """`<folder>/<id>.json`, the first folder that has it winning (run-local: `--templates-dir`
    before the five templates shipped in the package). A file that is not a JSON object is
    handed on as it is, for the worker's checks to reject (`schema`)."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders

    def template(self, template_id: str) -> JsonObject | None:
        if "/" in template_id or "\\" in template_id or template_id.startswith("."):
            return None
        for folder in self.folders:
            path = folder / f"{template_id}.json"
            if path.is_file():
                try:
                    data: Any = json.loads(path.read_text(encoding="utf-8"))
                except (UnicodeDecodeError, ValueError):
                    return {"unreadable": path.name}
                return data if isinstance(data, dict) else {"notAnObject": True}
        return None
