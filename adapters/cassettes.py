"""Gemini replayed from recorded responses (cassettes), and recorded from the real API.

`run-local` runs the shipped example with no key: each request is keyed by a hash of everything
the model sees, and its recorded response is served; `record` makes the real call and saves it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from states.llm_client.contracts import to_builtins
from states.llm_client.ports import LLM, LLMCallFailed, LLMRequest, LLMResponse


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
