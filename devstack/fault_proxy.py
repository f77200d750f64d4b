"""A loopback HTTP proxy that injects faults in front of a local service (fake-gcs-server).

Tests point a function process at the proxy instead of the service (`STORAGE_EMULATOR_HOST`)
and script which requests fail: a status such as 403 or 503 for requests whose method and path
match, or a dropped connection. Everything else is forwarded unchanged, so the worker sees a
real Cloud Storage API that misbehaves exactly where a test says — the faults a production
bucket produces (a missing permission, an outage) without mocking the client library.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from devstack.loopback import LOOPBACK, LoopbackHttpServer

# Hop-by-hop headers are the proxy's own business (RFC 9110 §7.6.1); the rest pass through.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
)


@dataclass
class Fault:
    """Requests matching `method` and `path` (a regex searched in the path and query) get
    `status` with a Google-style JSON error body, or a dropped connection when `drop` is set;
    `times=None` keeps the fault until it is cleared."""

    status: int = 503
    method: str | None = None
    path: str | None = None
    drop: bool = False
    times: int | None = None
    hits: int = field(default=0, init=False)

    def matches(self, method: str, target: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path is None or re.search(self.path, target) is not None


class FaultProxy(LoopbackHttpServer):
    """Forwards to `upstream` (`http://host:port`) unless a scripted fault matches."""

    name = "fault-proxy"

    def __init__(self, upstream: str) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or LOOPBACK, parts.port or 80)
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.injected: list[tuple[str, str, int | None]] = []

    @property
    def endpoint(self) -> str:
        """What to point a client at instead of `upstream`."""
        return self.base_url

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.injected.clear()

    def _fault_for(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, target):
                    fault.hits += 1
                    self.injected.append((method, target, None if fault.drop else fault.status))
                    return fault
        return None


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = proxy._fault_for(self.command, self.path)
            if fault is not None:
                self._inject(fault)
                return
            self._forward(body)

        def _inject(self, fault: Fault) -> None:
            if fault.drop:
                self.close_connection = True
                self.connection.close()
                return
            payload = json.dumps(
                {"error": {"code": fault.status, "message": "injected fault", "errors": []}}
            ).encode()
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _forward(self, body: bytes) -> None:
            upstream = http.client.HTTPConnection(*proxy._upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                upstream.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the services' own logs are where tests look."""

    return Handler
