"""Registry collections as the workers' ports see them, over any source of documents
(Firestore in the functions, folders in `run-local`)."""

from __future__ import annotations

from typing import Protocol

from engine.ports import JsonObject


class Documents(Protocol):
    def document(self, collection: str, doc_id: str) -> JsonObject | None: ...


class PromptSchemaRegistry:
    """`llm_prompts` and `llm_schemas` (SPEC §8), collection names configurable."""

    def __init__(self, documents: Documents, prompts: str, schemas: str) -> None:
        self._documents = documents
        self._prompts = prompts
        self._schemas = schemas

    def prompt(self, prompt_id: str) -> JsonObject | None:
        return self._documents.document(self._prompts, prompt_id)

    def schema(self, schema_id: str) -> JsonObject | None:
        return self._documents.document(self._schemas, schema_id)
