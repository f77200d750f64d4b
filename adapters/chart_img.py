"""Chart-IMG for CHART_EXPORT: over HTTP (`real`), from fixtures (`mock`), or both (`record`).

All three implement `states.chart_export.chart_api.ChartApi` and reduce every answer to the same
observation — status, the two headers the spec keeps, a capped body — before the pure
`classify`, so a fixture behaves exactly like the answer it was recorded from
(docs/spec/CHART_EXPORT.md §6, §14).

API keys: the key goes into one request header and nowhere else. Error bodies are scrubbed of it
before anything reads them, provider messages are redacted, and no exception raised here carries
text from the HTTP stack (whose messages can quote header values): unexpected failures become
`ChartApiError`, which knows only the failing exception's type name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.clock import elapsed_ms, utc_now
from states.chart_export.chart_api import (
    ERROR_BODY_HEAD_BYTES,
    REDACTED,
    Account,
    AttemptKind,
    ChartAttempt,
    ChartRequest,
    classify,
    fixture_stem,
    media_type,
    parse_retry_after,
    provider_message,
)

if TYPE_CHECKING:
    import httpx2

CHART_PATH = "/v2/tradingview/advanced-chart"
CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_PNG_BYTES = 262_144
ACCEPT = "image/png, application/json"
KEPT_HEADERS = ("content-type", "retry-after")
RETRY_AFTER_STATUSES = frozenset({429, 503})
# Kinds that describe the request rather than the moment: worth keeping as a fixture. The
# others (quota, rate limit, 5xx) would make every later replay fail the same transient way.
DURABLE_KINDS: frozenset[AttemptKind] = frozenset({"ok", "invalid_image", "rejected"})

ClientFactory = Callable[[], "httpx2.Client"]
Clock = Callable[[], datetime]


class ChartApiError(RuntimeError):
    """An unexpected failure of an attempt, reduced to the failing exception's type name.

    The original exception is deliberately not chained: messages of the HTTP stack can quote
    header values, i.e. the API key.
    """

    def __init__(self, type_name: str) -> None:
        super().__init__(f"Chart-IMG attempt failed unexpectedly ({type_name})")
        self.type_name = type_name


class FixtureInvalid(ValueError):
    """A fixture file that does not follow chart_img_fixture_response.schema.json."""


@dataclass(frozen=True)
class RawResponse:
    """What may be kept of an HTTP answer: status, `content-type`, `retry-after`, capped body.

    `body` is the PNG for an `ok` answer and otherwise at most the first 4096 bytes, with the
    account's key already scrubbed. This is what the recorder saves and what a replay feeds back
    into the same interpretation.
    """

    status: int
    content_type: str | None
    retry_after: str | None
    body: bytes

    def headers(self) -> dict[str, str]:
        """The kept headers that were present, by their lower-case names."""
        pairs = (("content-type", self.content_type), ("retry-after", self.retry_after))
        return {name: value for name, value in pairs if value is not None}


@dataclass(frozen=True)
class Exchange:
    """A classified attempt plus the sanitized raw answer (None: no HTTP answer arrived)."""

    attempt: ChartAttempt
    raw: RawResponse | None


class RawChartApi(Protocol):
    """A real Chart-IMG call that also hands out the sanitized raw answer (for recording)."""

    def exchange(self, request: ChartRequest, account: Account, timeout_s: float) -> Exchange: ...


def scrub(data: bytes, secret: str, *, truncated: bool) -> bytes:
    """`data` without `secret`: whole occurrences replaced and, when the body was cut short
    (`truncated`), a trailing partial occurrence cut too — a key straddling the 4096-byte cut
    would otherwise survive as a prefix.
    """
    if not secret:
        return data
    needle = secret.encode("utf-8")
    data = data.replace(needle, REDACTED.encode())
    if not truncated:
        return data
    for length in range(min(len(needle) - 1, len(data)), 0, -1):
        if data.endswith(needle[:length]):
            return data[:-length]
    return data


def interpret(
    raw: RawResponse,
    *,
    over_cap: bool,
    now: datetime,
    redact: tuple[str, ...] = (),
) -> ChartAttempt:
    """Classify a raw answer (§6): one code path for HTTP answers and fixture replays."""
    is_image = media_type(raw.content_type) == "image/png"
    message = None if is_image else provider_message(raw.body, redact=redact)
    kind, reason = classify(
        raw.status, raw.content_type, raw.body[:16], len(raw.body), over_cap, message
    )
    retry_after = (
        parse_retry_after(raw.retry_after, now) if raw.status in RETRY_AFTER_STATUSES else None
    )
    return ChartAttempt(
        kind=kind,
        http_status=raw.status,
        png=raw.body if kind == "ok" else None,
        reason=reason,
        retry_after_s=retry_after,
        provider_message=message,
        bytes=len(raw.body),
    )


def _httpx() -> Any:
    """`httpx2`, imported on the first real attempt: importing it costs over 100 ms, which an
    instance that only sees no-op events (or runs in mock mode) should never pay."""
    import httpx2

    return httpx2


_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context per process. Building it (loading the CA store) is the costly part of a
    client, tens to hundreds of milliseconds; an SSLContext is safe to share between threads."""
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = _httpx().create_ssl_context()
        return _ssl_context


def default_client() -> httpx2.Client:
    """A fresh client per attempt, so no cookie jar or connection outlives an attempt (no
    session state between accounts). trust_env=False keeps proxies and .netrc credentials from
    the environment out of the call."""
    client: httpx2.Client = _httpx().Client(
        follow_redirects=False, trust_env=False, verify=shared_ssl_context()
    )
    return client


# --- real ----------------------------------------------------------------------------------------


class _DeadlineExceeded(Exception):
    """The attempt's overall deadline passed while the body was still streaming."""


@dataclass(frozen=True)
class _Failure:
    """How an attempt ended without an answer: a kind, or an unexpected exception's type name."""

    kind: AttemptKind | None = None
    type_name: str | None = None


class _Call:
    """One attempt shared between the caller, who waits at most until the deadline, and the
    thread doing the I/O. Whoever comes second loses: a result after abandonment is dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = threading.Event()
        self._abandoned = False
        self._socket: socket.socket | None = None
        self.result: Exchange | _Failure | None = None

    def attach(self, sock: object) -> bool:
        """Remember the connection so an abandonment can break a blocked read; False if too late."""
        with self._lock:
            if self._abandoned:
                return False
            if isinstance(sock, socket.socket):
                self._socket = sock
            return True

    @property
    def abandoned(self) -> bool:
        with self._lock:
            return self._abandoned

    def finish(self, result: Exchange | _Failure) -> None:
        with self._lock:
            if not self._abandoned:
                self.result = result
                self.done.set()

    def abandon(self) -> bool:
        """Give up on the I/O thread; False when it had already finished (its result stands)."""
        with self._lock:
            if self.done.is_set():
                return False
            self._abandoned = True
            sock = self._socket
        if sock is not None:
            # The plain-socket method, also for TLS sockets: it shuts the descriptor down (the
            # blocked read returns at once) without touching the SSL object the I/O thread uses.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return True


class ChartImgHttp:
    """`real` mode: `POST {base}/v2/tradingview/advanced-chart` with httpx2.

    The whole attempt — connect, send, headers, streamed body — ends by `timeout_s`: the I/O runs
    on a helper thread and the caller waits at most until the deadline. Per-operation timeouts
    (connect ≤ 10 s, reads ≤ the budget) and a deadline check between body chunks make the helper
    stop by itself; on abandonment its socket is shut down so a blocked read ends at once.
    Bodies are never read past what is needed: the cap + 1 bytes for an image, 4096 otherwise.
    """

    def __init__(
        self,
        base_url: str,
        max_png_bytes: int = DEFAULT_MAX_PNG_BYTES,
        *,
        client_factory: ClientFactory = default_client,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        clock: Clock = utc_now,
    ) -> None:
        if max_png_bytes < 1:
            raise ValueError("max_png_bytes must be positive")
        self._url = base_url.rstrip("/") + CHART_PATH
        self._max_png_bytes = max_png_bytes
        self._client_factory = client_factory
        self._connect_timeout_s = connect_timeout_s
        self._clock = clock

    def render(
        self, request: ChartRequest, account: Account | None, timeout_s: float
    ) -> ChartAttempt:
        if account is None:
            raise ValueError("real mode renders with a reserved account")
        return self.exchange(request, account, timeout_s).attempt

    def exchange(self, request: ChartRequest, account: Account, timeout_s: float) -> Exchange:
        if self._client_factory is default_client:
            # Built on the first attempt, before its clock starts: the TLS context (and the
            # import of httpx2) is never paid at an instance's start, nor inside an attempt.
            shared_ssl_context()
        started = time.monotonic()
        deadline = started + max(0.0, timeout_s)
        if timeout_s <= 0:
            return Exchange(ChartAttempt("timeout", None), None)
        call = _Call()
        worker = threading.Thread(
            target=self._run,
            args=(call, request, account, deadline),
            name="chart-img-attempt",
            daemon=True,
        )
        worker.start()
        call.done.wait(max(0.0, deadline - time.monotonic()))
        if not call.done.is_set() and call.abandon():
            return Exchange(ChartAttempt("timeout", None, duration_ms=elapsed_ms(started)), None)
        result = call.result
        if isinstance(result, Exchange):
            attempt = dataclasses.replace(result.attempt, duration_ms=elapsed_ms(started))
            return Exchange(attempt, result.raw)
        if result is not None and result.kind is not None:
            return Exchange(ChartAttempt(result.kind, None, duration_ms=elapsed_ms(started)), None)
        # Raised here, outside any `except`, so not even __context__ links to the original.
        raise ChartApiError(result.type_name if result and result.type_name else "unknown")

    def _run(self, call: _Call, request: ChartRequest, account: Account, deadline: float) -> None:
        """The helper thread: turns every way the I/O can end into a `finish` value."""
        result: Exchange | _Failure
        try:
            result = self._perform(call, request, account, deadline)
        except (_httpx().TimeoutException, _DeadlineExceeded):
            result = _Failure(kind="timeout")
        except _httpx().TransportError:
            # Connect errors, resets, a dropped connection, protocol errors: the text is dropped.
            result = _Failure(kind="network_error")
        except Exception as exc:
            result = _Failure(type_name=type(exc).__name__)
        call.finish(result)

    def _perform(
        self, call: _Call, request: ChartRequest, account: Account, deadline: float
    ) -> Exchange | _Failure:
        headers = {
            "x-api-key": account.api_key,
            "content-type": "application/json",
            "accept": ACCEPT,
            # Raw bytes are what the cap counts; a compressed body could expand past it in memory.
            "accept-encoding": "identity",
        }
        content = json.dumps(request.body, separators=(",", ":"), ensure_ascii=False).encode()
        with self._client_factory() as client:
            # An attempt the caller has given up on must not reach the provider (and spend quota)
            # afterwards; and whatever setup cost is left comes out of the same budget.
            budget = deadline - time.monotonic()
            if budget <= 0 or call.abandoned:
                raise _DeadlineExceeded
            timeout = _httpx().Timeout(
                connect=min(self._connect_timeout_s, budget), read=budget, write=budget, pool=budget
            )
            with client.stream(
                "POST",
                self._url,
                content=content,
                headers=headers,
                timeout=timeout,
                follow_redirects=False,
            ) as response:
                return self._receive(call, response, account, deadline)

    def _receive(
        self, call: _Call, response: httpx2.Response, account: Account, deadline: float
    ) -> Exchange | _Failure:
        """Read what the classification needs, never more, and reduce it to a raw answer."""
        stream = response.extensions.get("network_stream")
        get_extra_info = getattr(stream, "get_extra_info", None)
        if not call.attach(get_extra_info("socket") if get_extra_info else None):
            return _Failure(kind="timeout")  # abandoned meanwhile; nobody reads this
        status = response.status_code
        content_type = response.headers.get("content-type")
        retry_after = response.headers.get("retry-after")
        image = status == 200 and media_type(content_type) == "image/png"
        limit = self._max_png_bytes + 1 if image else ERROR_BODY_HEAD_BYTES
        body = bytearray()
        # A transport may hand over a response already read into memory (httpx2.MockTransport
        # does); its bytes are then simply capped like streamed ones.
        chunks = [response.content] if response.is_stream_consumed else response.iter_raw()
        for chunk in chunks:
            if time.monotonic() >= deadline or call.abandoned:
                raise _DeadlineExceeded
            body += chunk[: limit - len(body)]
            if len(body) >= limit:
                break  # the caller's `with` closes the connection; the rest is never read
        raw_body = bytes(body)
        over_cap = image and len(raw_body) > self._max_png_bytes
        if not image:
            raw_body = scrub(raw_body, account.api_key, truncated=len(raw_body) >= limit)
        raw = RawResponse(status, content_type, retry_after, raw_body)
        attempt = interpret(raw, over_cap=over_cap, now=self._clock(), redact=(account.api_key,))
        if attempt.kind != "ok":
            # Keep what a fixture may hold; the observation (bytes read) stays in the attempt.
            raw = dataclasses.replace(raw, body=raw_body[:ERROR_BODY_HEAD_BYTES])
        return Exchange(attempt, raw)


# --- mock ----------------------------------------------------------------------------------------


def _fixture_body(document: Any, path: Path) -> RawResponse:
    """Validate one `<stem>__<status>.json` fixture and turn it into a raw answer."""
    name = path.name
    if not isinstance(document, dict) or set(document) - {"status", "headers", "json", "text"}:
        raise FixtureInvalid(f"{name}: expected an object with status, headers, json or text")
    status = document.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise FixtureInvalid(f"{name}: status must be an integer 100-599")
    headers = document.get("headers", {})
    if (
        not isinstance(headers, dict)
        or set(headers) - set(KEPT_HEADERS)
        or not all(isinstance(v, str) for v in headers.values())
    ):
        raise FixtureInvalid(f"{name}: headers may only hold content-type and retry-after strings")
    if "json" in document and "text" in document:
        raise FixtureInvalid(f"{name}: json and text are exclusive")
    if "json" in document:
        body = json.dumps(document["json"]).encode()
    elif "text" in document:
        text = document["text"]
        if not isinstance(text, str) or len(text) > ERROR_BODY_HEAD_BYTES:
            raise FixtureInvalid(f"{name}: text must be a string of at most 4096 characters")
        body = text.encode()
    else:
        body = b""
    return RawResponse(status, headers.get("content-type"), headers.get("retry-after"), body)


class FixtureChartApi:
    """`mock` mode: answers from `<stem>.png`, else `<stem>__<status>.json`, else fixture_missing.

    No network, no account (it is ignored). A PNG fixture is a 200 `image/png`; a JSON fixture
    is the response it describes. Both go through the same interpretation as real answers,
    including the size cap. When several status fixtures exist, the lowest status is served,
    so the choice never depends on directory order.
    """

    def __init__(
        self,
        fixtures_dir: Path,
        max_png_bytes: int = DEFAULT_MAX_PNG_BYTES,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._dir = Path(fixtures_dir)
        self._max_png_bytes = max_png_bytes
        self._clock = clock

    def fixture_path(self, request: ChartRequest) -> Path | None:
        """The file an attempt for `request` would replay, or None."""
        stem = fixture_stem(request)
        if "/" in stem or "\\" in stem or stem.startswith("."):
            return None  # never look outside the fixtures directory
        png = self._dir / f"{stem}.png"
        if png.is_file():
            return png
        pattern = re.compile(re.escape(stem) + r"__[1-5][0-9]{2}\.json")
        try:
            with os.scandir(self._dir) as entries:
                names = [e.name for e in entries if pattern.fullmatch(e.name) and e.is_file()]
        except FileNotFoundError:
            return None
        return self._dir / min(names) if names else None

    def has_fixture(self, request: ChartRequest) -> bool:
        return self.fixture_path(request) is not None

    def render(
        self, request: ChartRequest, account: Account | None, timeout_s: float
    ) -> ChartAttempt:
        started = time.monotonic()
        path = self.fixture_path(request)
        if path is None:
            return ChartAttempt("fixture_missing", None, duration_ms=elapsed_ms(started))
        if path.suffix == ".png":
            with path.open("rb") as handle:
                body = handle.read(self._max_png_bytes + 1)
            raw = RawResponse(200, "image/png", None, body)
            over_cap = len(body) > self._max_png_bytes
        else:
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise FixtureInvalid(f"{path.name}: not JSON") from exc
            raw = _fixture_body(document, path)
            image = raw.status == 200 and media_type(raw.content_type) == "image/png"
            limit = self._max_png_bytes + 1 if image else ERROR_BODY_HEAD_BYTES
            over_cap = image and len(raw.body) > self._max_png_bytes
            raw = dataclasses.replace(raw, body=raw.body[:limit])
        attempt = interpret(raw, over_cap=over_cap, now=self._clock())
        return dataclasses.replace(attempt, duration_ms=elapsed_ms(started))


# --- record --------------------------------------------------------------------------------------


def _redact_json(value: Any, secret: str) -> Any:
    """Every string of a JSON value (keys included) with `secret` replaced."""
    if isinstance(value, str):
        return value.replace(secret, REDACTED)
    if isinstance(value, list):
        return [_redact_json(item, secret) for item in value]
    if isinstance(value, dict):
        return {
            _redact_json(key, secret): _redact_json(item, secret) for key, item in value.items()
        }
    return value


def fixture_document(raw: RawResponse, secret: str) -> dict[str, Any]:
    """The `<stem>__<status>.json` content for a non-image answer: status, kept headers, body.

    The body is saved as parsed JSON when it is JSON, else as text (≤ 4096 characters; invalid
    UTF-8 replaced), else omitted when empty. Strings are redacted once more, so even a key the
    provider escaped differently cannot reach the file.
    """
    document: dict[str, Any] = {"status": raw.status}
    headers = raw.headers()
    if headers:
        document["headers"] = headers
    body = raw.body[:ERROR_BODY_HEAD_BYTES]
    if body:
        try:
            document["json"] = _redact_json(json.loads(body.decode("utf-8")), secret)
        except (UnicodeDecodeError, ValueError, RecursionError):
            text = body.decode("utf-8", errors="replace")[:ERROR_BODY_HEAD_BYTES]
            document["text"] = text.replace(secret, REDACTED) if secret else text
    return document


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory and `os.replace`: a reader (or a crash)
    never sees a half-written fixture."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RecordingChartApi:
    """`record` mode: replay an existing fixture as mock does; otherwise call Chart-IMG for real
    and save the answer as `<stem>.png` or `<stem>__<status>.json`.

    Only durable answers are saved by default (`ok`, `invalid_image`, `rejected`): a recorded 429
    or 5xx would be replayed by every later attempt, so the retry could never reach the provider
    again. `save_transient=True` saves them too. Nothing of the request is saved — no body, no
    header, no key — and a file that would contain the key is not written at all.
    """

    def __init__(
        self,
        real: RawChartApi,
        fixtures_dir: Path,
        max_png_bytes: int = DEFAULT_MAX_PNG_BYTES,
        *,
        save_transient: bool = False,
        on_recorded: Callable[[Path], None] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._real = real
        self._dir = Path(fixtures_dir)
        self._replay = FixtureChartApi(self._dir, max_png_bytes, clock=clock)
        self._save_transient = save_transient
        self._on_recorded = on_recorded

    def has_fixture(self, request: ChartRequest) -> bool:
        """True when an attempt would be a replay: the caller then reserves no quota."""
        return self._replay.has_fixture(request)

    def render(
        self, request: ChartRequest, account: Account | None, timeout_s: float
    ) -> ChartAttempt:
        if self._replay.has_fixture(request):
            return self._replay.render(request, None, timeout_s)
        if account is None:
            # No fixture and no reserved account: nothing may be called.
            return ChartAttempt("fixture_missing", None)
        exchange = self._real.exchange(request, account, timeout_s)
        if exchange.raw is not None and (
            self._save_transient or exchange.attempt.kind in DURABLE_KINDS
        ):
            self._save(request, exchange, account.api_key)
        return exchange.attempt

    def _save(self, request: ChartRequest, exchange: Exchange, secret: str) -> Path | None:
        raw = exchange.raw
        assert raw is not None
        stem = fixture_stem(request)
        if exchange.attempt.kind == "ok":
            path, data = self._dir / f"{stem}.png", raw.body
        else:
            path = self._dir / f"{stem}__{raw.status}.json"
            document = fixture_document(raw, secret)
            data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
        if secret and secret.encode() in data:
            return None
        write_atomic(path, data)
        if self._on_recorded is not None:
            self._on_recorded(path)
        return path
