"""Adapters for `worker-llm-client run-local`: one step with no cloud services.

The flow run is a JSON file held in memory (the patches are recorded, not sent anywhere),
registries and `gs://` objects are folders, and Gemini is either the real API or a folder of
recorded responses (cassettes) keyed by a hash of the request.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from engine.contracts import JsonObject, to_builtins
from engine.ports import (
    ABSENT,
    LLM,
    BlobNotFound,
    BlobTooLarge,
    GuardedWrite,
    LLMCallFailed,
    LLMRequest,
    LLMResponse,
    Snapshot,
)


class MemoryFlowRunStore:
    """The flow run of a local file. Single process, no concurrency: patches apply in order."""

    def __init__(self, run_id: str, document: JsonObject, collection: str = "flow_runs") -> None:
        self.run_id = run_id
        self.document = copy.deepcopy(document)
        self.collection = collection
        self.patches: list[JsonObject] = []

    def load(self, run_id: str) -> Snapshot | None:
        if run_id != self.run_id:
            return None
        return Snapshot(data=copy.deepcopy(self.document), update_time=datetime.now(UTC))

    def update_step(
        self,
        run_id: str,
        step_id: str,
        expect: str,
        patch: dict[str, Any],
        also: dict[str, Any] | None = None,
    ) -> GuardedWrite:
        step = self.document.get("steps", {}).get(step_id)
        status = step.get("status") if isinstance(step, dict) else None
        if run_id != self.run_id or status != expect:
            return GuardedWrite(committed=False, observed=str(status))
        for rel, value in (also or {}).items():
            node: Any = step
            for key in rel.split("."):
                node = node.get(key, ABSENT) if isinstance(node, dict) else ABSENT
            if node != value:
                return GuardedWrite(committed=False, observed=f"{status} (another claim)")
        assert isinstance(step, dict)
        for rel, value in patch.items():
            node = step
            *parents, leaf = rel.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = copy.deepcopy(value)
        self.patches.append(
            {
                "doc": f"{self.collection}/{run_id}",
                "fields": {f"steps.{step_id}.{rel}": value for rel, value in patch.items()},
            }
        )
        return GuardedWrite(committed=True)

    def running_runs(self) -> list[tuple[str, JsonObject]]:
        if self.document.get("status") != "RUNNING":
            return []
        return [(self.run_id, copy.deepcopy(self.document))]

    def set_run_error(self, run_id: str, error: JsonObject) -> bool:
        if self.document.get("error") == error:
            return False
        self.document["error"] = error
        self.patches.append({"doc": f"{self.collection}/{run_id}", "fields": {"error": error}})
        return True


class FolderRegistry:
    """`<root>/llm_prompts/<promptId>.json` and `<root>/llm_schemas/<schemaId>.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _get(self, folder: str, doc_id: str) -> JsonObject | None:
        path = self.root / folder / f"{doc_id}.json"
        if "/" in doc_id or not path.is_file():
            return None
        data: JsonObject = json.loads(path.read_text(encoding="utf-8"))
        return data

    def prompt(self, prompt_id: str) -> JsonObject | None:
        return self._get("llm_prompts", prompt_id)

    def schema(self, schema_id: str) -> JsonObject | None:
        return self._get("llm_schemas", schema_id)


class FolderBlobStore:
    """`gs://bucket/path` ↔ `<folder>/bucket/path`. Writes go to `output`; reads look there
    first, then in `inputs`, so a run never modifies the example it reads."""

    def __init__(self, inputs: Path, output: Path) -> None:
        self.inputs = inputs
        self.output = output

    def _path(self, base: Path, uri: str) -> Path:
        if not uri.startswith("gs://") or ".." in uri.split("/"):
            raise BlobNotFound(uri)
        return base / uri[5:]

    def local_path(self, uri: str) -> Path:
        return self._path(self.output, uri)

    def _find(self, uri: str) -> Path:
        for base in (self.output, self.inputs):
            path = self._path(base, uri)
            if path.is_file():
                return path
        raise BlobNotFound(uri)

    def read(self, uri: str, limit: int) -> bytes:
        with self._find(uri).open("rb") as source:
            data = source.read(limit + 1)
        if len(data) > limit:
            raise BlobTooLarge(uri)
        return data

    def exists(self, uri: str) -> bool:
        try:
            self._find(uri)
        except BlobNotFound:
            return False
        return True

    def create(self, uri: str, data: bytes, content_type: str) -> bool:
        path = self._path(self.output, uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as sink:  # create-only, like if_generation_match=0
                sink.write(data)
        except FileExistsError:
            return False
        return True


def cassette_key(request: LLMRequest) -> str:
    """Stable identity of a request: everything the model sees, images by hash."""
    canonical = {
        "model": request.model,
        "systemInstruction": request.system_instruction,
        "userText": request.user_text,
        "images": [hashlib.sha256(image).hexdigest() for image in request.images],
        "profile": to_builtins(request.profile),
        "responseJsonSchema": request.response_json_schema,
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:32]


class CassetteLLM:
    """Replays recorded responses; a request never recorded fails like an unreachable API."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.missing: list[str] = []

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        key = cassette_key(request)
        path = self.folder / f"{key}.json"
        if not path.is_file():
            self.missing.append(key)
            raise LLMCallFailed("connection", None, f"no cassette {key}")
        return msgspec.convert(
            json.loads(path.read_text(encoding="utf-8"))["response"], LLMResponse
        )


class RecordingLLM:
    """Calls the real model and saves each response as a cassette for later replays."""

    def __init__(self, inner: LLM, folder: Path, now: Callable[[], datetime] | None = None) -> None:
        self.inner = inner
        self.folder = folder
        self.now = now or (lambda: datetime.now(UTC))
        self.recorded: list[Path] = []

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        response = self.inner.generate(request, timeout_s)
        key = cassette_key(request)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.json"
        cassette = {
            "key": key,
            "model": request.model,
            "recordedAt": self.now().isoformat(),
            "response": to_builtins(response),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cassette, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        self.recorded.append(path)
        return response
