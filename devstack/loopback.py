"""The in-process HTTP servers of the local stack (the Gemini and Chart-IMG stubs, the fault
proxy): one ThreadingHTTPServer on a free loopback port, served from a daemon thread.

A request is handled on its own thread, so a slow answer never holds up another; `stopping` is
set on `stop` so handlers sleeping on a scripted delay wake and the shutdown does not wait them
out.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

LOOPBACK = "127.0.0.1"


class LoopbackHttpServer:
    """Start, stop, port and URL; a subclass says what answers (`handler`) and its name."""

    name = "loopback-http"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        server = ThreadingHTTPServer((LOOPBACK, 0), self.handler())
        server.daemon_threads = True
        self._server = server
        self.stopping.clear()
        self._thread = threading.Thread(target=server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"
