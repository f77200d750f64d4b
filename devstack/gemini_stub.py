"""A local stand-in for the Gemini REST API, reached by the real google-genai SDK.

The worker is pointed at it with `GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT`; the SDK then
POSTs to `{base}/{api_version}/models/{model}:generateContent` (api_version is "v1" by default
in google-genai 3.4, "v1beta" if HttpOptions.api_version says so). Tests script the replies in
order and inspect what the SDK actually sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.loopback import LoopbackHttpServer

DEFAULT_USAGE: dict[str, Any] = {
    "promptTokenCount": 287,
    "candidatesTokenCount": 59,
    "totalTokenCount": 346,
    "promptTokensDetails": [
        {"modality": "TEXT", "tokenCount": 29},
        {"modality": "IMAGE", "tokenCount": 258},
    ],
}

_MODEL_IN_PATH = re.compile(r"/models/([^/:]+):")


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer; `delay` seconds pass before it is sent (simulates slowness)."""

    status: int = 200
    body: Mapping[str, Any] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """What the SDK sent: path with query, lower-cased headers, parsed JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"

    @property
    def model(self) -> str | None:
        """Model id from `.../models/{model}:generateContent`, if the path has one."""
        found = _MODEL_IN_PATH.search(self.path)
        return found.group(1) if found else None


def ok(
    text: str | list[str],
    finish_reason: str = "STOP",
    model_version: str = "gemini-2.0-flash-001",
    usage: Mapping[str, Any] | None = None,
    response_id: str = "resp-1",
    delay: float = 0.0,
) -> Reply:
    """A successful GenerateContentResponse with one candidate made of text parts."""
    texts = [text] if isinstance(text, str) else list(text)
    body = {
        "candidates": [
            {
                "content": {"parts": [{"text": t} for t in texts], "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": dict(DEFAULT_USAGE if usage is None else usage),
        "modelVersion": model_version,
        "responseId": response_id,
    }
    return Reply(status=200, body=body, delay=delay)


def error(status: int, status_text: str, message: str, delay: float = 0.0) -> Reply:
    """A Google API error body, e.g. error(429, "RESOURCE_EXHAUSTED", "Quota exceeded")."""
    body = {"error": {"code": status, "message": message, "status": status_text}}
    return Reply(status=status, body=body, delay=delay)


EXHAUSTED_REPLY = error(
    500,
    "INTERNAL",
    "gemini stub: script exhausted (no scripted reply left for this request)",
)


class GeminiStub(LoopbackHttpServer):
    """ThreadingHTTPServer on a free loopback port answering with scripted replies.

    Each request is handled on its own thread, so a delayed reply never holds up others.
    """

    name = "gemini-stub"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._records: list[RecordedRequest] = []
        self._default: Reply = EXHAUSTED_REPLY

    # -- lifecycle -----------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    # -- scripting -----------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies; each incoming request consumes the next one in order."""
        with self._lock:
            self._script.extend(replies)

    def set_default(self, reply: Reply) -> None:
        """Reply used once the script is exhausted (initially a 500 'script exhausted')."""
        with self._lock:
            self._default = reply

    def reset(self) -> None:
        """Forget scripted replies, recorded requests and any custom default."""
        with self._lock:
            self._script.clear()
            self._records.clear()
            self._default = EXHAUSTED_REPLY

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._records)

    # -- called from handler threads -----------------------------------------------------

    def _take(self, record: RecordedRequest) -> Reply:
        with self._lock:
            self._records.append(record)
            return self._script.popleft() if self._script else self._default

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)


def _make_handler(stub: GeminiStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gemini-stub/1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"_raw": raw.decode("utf-8", errors="replace")}
            if not isinstance(body, dict):
                body = {"_json": body}
            record = RecordedRequest(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                method=self.command,
            )
            reply = stub._take(record)
            stub._sleep(reply.delay)
            payload = json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test); nothing to deliver to

        do_POST = _handle
        do_GET = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep pytest output clean

    return Handler
