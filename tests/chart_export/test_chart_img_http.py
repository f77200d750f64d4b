"""`ChartImgHttp` (real mode) against the stub: every row of the §6 table, the size cap, the
attempt deadline, redirects, and the rule that no exception ever carries the API key."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx2
import pytest

from adapters.chart_img import (
    ChartApiError,
    ChartImgHttp,
    RawResponse,
    default_client,
    scrub,
)
from devstack.chart_img_stub import CHART_PATH, ChartImgStub
from states.chart_export.chart_api import PNG_MAGIC, Account, ChartAttempt

from .helpers import ACC_1, KEY_1, chart_request, keys

CAP = 262_144
NOW = datetime(2025, 12, 15, 10, 25, 30, tzinfo=UTC)


def render(
    stub: ChartImgStub,
    respond: dict[str, Any] | None = None,
    timeout_s: float = 10.0,
    cap: int = CAP,
    account: Account = ACC_1,
) -> ChartAttempt:
    """One attempt against the stub, with `respond` as the only script entry (if given)."""
    script = [{"match": {}, "respond": respond}] if respond is not None else []
    stub.configure("BASIC", keys(ACC_1), script)
    api = ChartImgHttp(stub.base_url, cap, clock=lambda: NOW)
    return api.render(chart_request(), account, timeout_s)


def assert_no_key(*texts: object) -> None:
    for text in texts:
        assert KEY_1 not in str(text)
        assert KEY_1 not in repr(text)


# --- ok ------------------------------------------------------------------------------------------


def test_ok_returns_the_png(stub: ChartImgStub) -> None:
    attempt = render(stub)
    assert attempt.kind == "ok"
    assert attempt.http_status == 200
    assert attempt.png == stub.png
    assert attempt.bytes == len(stub.png)
    assert attempt.reason is None and attempt.provider_message is None
    assert attempt.duration_ms >= 0
    seen = stub.state()["requests"]
    assert [(r["accountId"], r["symbol"], r["interval"]) for r in seen] == [
        ("acc-1", "BINANCE:BTCUSDT", "1M")
    ]


def test_request_line_headers_and_body() -> None:
    """What goes on the wire: the path, the three headers of §6, the body as given, no cookie."""
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(
            200,
            headers={"content-type": "image/png", "set-cookie": "session=abc"},
            content=PNG_MAGIC + b"rest",
        )

    api = ChartImgHttp(
        "https://chart.example/",
        client_factory=lambda: httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    request = chart_request()
    for _ in range(2):
        assert api.render(request, ACC_1, 5).kind == "ok"
    first, second = seen
    assert (first.method, str(first.url)) == ("POST", "https://chart.example" + CHART_PATH)
    assert first.headers["x-api-key"] == KEY_1
    assert first.headers["content-type"] == "application/json"
    assert first.headers["accept"] == "image/png, application/json"
    assert json.loads(first.content) == dict(request.body)
    assert "cookie" not in second.headers  # a fresh client per attempt: no session state


# --- invalid_image -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("respond", "reason"),
    [
        ({"headers": {"Content-Type": "text/html"}, "text": "<html>busy</html>"}, "content_type"),
        ({"json": {"message": "ok"}}, "content_type"),
        ({"headers": {"Content-Type": "image/png"}, "text": ""}, "empty"),
        ({"headers": {"Content-Type": "image/png"}, "text": "GIF89a not a png"}, "not_png"),
        ({"pngOfSize": 300_000}, "too_large"),
    ],
)
def test_other_200_is_invalid_image(
    stub: ChartImgStub, respond: dict[str, Any], reason: str
) -> None:
    attempt = render(stub, respond)
    assert (attempt.kind, attempt.http_status, attempt.reason) == ("invalid_image", 200, reason)
    assert attempt.png is None


def test_png_at_exactly_the_cap_is_ok_and_one_byte_more_is_too_large(stub: ChartImgStub) -> None:
    assert render(stub, {"pngOfSize": 4096}, cap=4096).kind == "ok"
    over = render(stub, {"pngOfSize": 4097}, cap=4096)
    assert (over.kind, over.reason, over.bytes) == ("invalid_image", "too_large", 4097)


def test_an_oversized_png_is_read_only_to_cap_plus_one(stub: ChartImgStub) -> None:
    attempt = render(stub, {"pngOfSize": 300_000}, cap=1024)
    assert (attempt.kind, attempt.reason) == ("invalid_image", "too_large")
    assert attempt.bytes == 1025


# --- 429 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["Limit Exceeded", "LIMIT EXCEEDED", "daily limit exceeded"])
def test_429_limit_exceeded_in_any_case(stub: ChartImgStub, message: str) -> None:
    attempt = render(stub, {"status": 429, "json": {"message": message}})
    assert (attempt.kind, attempt.http_status) == ("limit_exceeded", 429)
    assert attempt.provider_message == message


def test_the_stubs_own_daily_limit_answer_is_limit_exceeded(stub: ChartImgStub) -> None:
    stub.configure("BASIC", keys(ACC_1, daily_limit=1, used_today=1))
    attempt = ChartImgHttp(stub.base_url).render(chart_request(), ACC_1, 10)
    assert attempt.kind == "limit_exceeded"
    stub.reset()  # the over-limit request was this test's point


def test_429_too_many_requests_with_retry_after_seconds(stub: ChartImgStub) -> None:
    respond = {
        "status": 429,
        "json": {"message": "Too Many Requests"},
        "headers": {"Retry-After": "7"},
    }
    attempt = render(stub, respond)
    assert (attempt.kind, attempt.http_status, attempt.retry_after_s) == ("rate_limited", 429, 7.0)
    assert attempt.provider_message == "Too Many Requests"


def test_429_with_retry_after_http_date(stub: ChartImgStub) -> None:
    when = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    attempt = render(stub, {"status": 429, "headers": {"Retry-After": when}})
    assert (attempt.kind, attempt.retry_after_s) == ("rate_limited", 42.0)


def test_429_with_an_invalid_retry_after_has_none(stub: ChartImgStub) -> None:
    attempt = render(stub, {"status": 429, "headers": {"Retry-After": "later"}})
    assert (attempt.kind, attempt.retry_after_s) == ("rate_limited", None)


# --- 5xx -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors(stub: ChartImgStub, status: int) -> None:
    attempt = render(stub, {"status": status, "json": {"message": "Something Went Wrong"}})
    assert (attempt.kind, attempt.http_status) == ("server_error", status)
    assert attempt.provider_message == "Something Went Wrong"


def test_retry_after_counts_on_503_but_not_on_500(stub: ChartImgStub) -> None:
    assert render(stub, {"status": 503, "headers": {"Retry-After": "3"}}).retry_after_s == 3.0
    assert render(stub, {"status": 500, "headers": {"Retry-After": "3"}}).retry_after_s is None


# --- network errors and timeouts -----------------------------------------------------------------


def test_dropped_connection_is_a_network_error(stub: ChartImgStub) -> None:
    attempt = render(stub, {"closeConnection": True})
    assert (attempt.kind, attempt.http_status, attempt.png) == ("network_error", None, None)


def test_connection_refused_is_a_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on the port any more
    attempt = ChartImgHttp(f"http://127.0.0.1:{port}").render(chart_request(), ACC_1, 5)
    assert attempt.kind == "network_error"


def test_slow_answer_is_a_timeout(stub: ChartImgStub) -> None:
    attempt = render(stub, {"status": 200, "delaySeconds": 1.0}, timeout_s=0.3)
    assert (attempt.kind, attempt.http_status) == ("timeout", None)


def test_no_budget_means_no_request(stub: ChartImgStub) -> None:
    assert render(stub, timeout_s=0).kind == "timeout"
    assert stub.state()["total"] == 0


# --- rejected ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 418, 501])
def test_client_errors_and_other_statuses_are_rejected(stub: ChartImgStub, status: int) -> None:
    attempt = render(stub, {"status": status, "json": {"message": f"error {status}"}})
    assert (attempt.kind, attempt.http_status) == ("rejected", status)
    assert attempt.provider_message == f"error {status}"


def test_the_stubs_own_validation_is_rejected_with_its_message(stub: ChartImgStub) -> None:
    stub.configure("BASIC", keys(ACC_1))
    request = chart_request(interval="1d")  # a lower-case day, as the original sent it
    attempt = ChartImgHttp(stub.base_url).render(request, ACC_1, 10)
    assert (attempt.kind, attempt.http_status) == ("rejected", 422)
    assert attempt.provider_message == "Invalid Interval"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(stub: ChartImgStub, status: int) -> None:
    target = stub.base_url + CHART_PATH  # following it would be a second, successful request
    attempt = render(stub, {"status": status, "headers": {"Location": target}})
    assert (attempt.kind, attempt.http_status) == ("rejected", status)
    assert stub.state()["total"] == 1


def test_unknown_key_is_rejected_403(stub: ChartImgStub) -> None:
    stub.configure("BASIC", keys(ACC_1))
    attempt = ChartImgHttp(stub.base_url).render(
        chart_request(), Account("acc-x", "not-configured-key", None), 10
    )
    assert (attempt.kind, attempt.http_status, attempt.provider_message) == (
        "rejected",
        403,
        "Forbidden",
    )


# --- raw servers for what the stub cannot do -----------------------------------------------------


class RawServer:
    """A loopback socket server whose replies are written byte by byte by `reply(conn, stop)`."""

    def __init__(self, reply: Callable[[socket.socket, threading.Event], None]) -> None:
        self._reply = reply
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self._sock.settimeout(0.1)
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            # OSError: the client closed the connection, exactly what some tests expect
            with contextlib.suppress(OSError):
                self._reply(conn, self._stop)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, threading.Event], None]], str]]:
    servers: list[RawServer] = []

    def start(reply: Callable[[socket.socket, threading.Event], None]) -> str:
        servers.append(RawServer(reply))
        return servers[-1].base_url

    yield start
    for server in servers:
        server.close()


PNG_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"


def endless_png(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(PNG_HEADERS + b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = PNG_MAGIC + b"\x00" * 16376
    while not stop.is_set():
        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def trickling_png(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(PNG_HEADERS + b"Content-Length: 100000\r\n\r\n" + PNG_MAGIC)
    while not stop.wait(0.05):
        conn.sendall(b"\x00")


def stalled_png(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(PNG_HEADERS + b"Content-Length: 100000\r\n\r\n" + PNG_MAGIC)
    stop.wait(30)


def test_an_endless_body_is_cut_at_cap_plus_one(
    raw_server: Callable[[Callable[[socket.socket, threading.Event], None]], str],
) -> None:
    """Were the body read to its end, this attempt could only end by its deadline."""
    api = ChartImgHttp(raw_server(endless_png), 1024)
    attempt = api.render(chart_request(), ACC_1, 30)
    assert (attempt.kind, attempt.reason, attempt.bytes) == ("invalid_image", "too_large", 1025)


@pytest.mark.parametrize("reply", [trickling_png, stalled_png])
def test_the_whole_attempt_is_bounded_by_its_deadline(
    raw_server: Callable[[Callable[[socket.socket, threading.Event], None]], str],
    reply: Callable[[socket.socket, threading.Event], None],
) -> None:
    """Headers arrive at once, then the body trickles (each read well inside any per-read
    timeout) or stalls: only an overall deadline ends the attempt."""
    api = ChartImgHttp(raw_server(reply))
    started = time.monotonic()
    attempt = api.render(chart_request(), ACC_1, 0.3)
    assert (attempt.kind, attempt.http_status) == ("timeout", None)
    assert time.monotonic() - started < 5  # far above 0.3 s, far below the body's 5000 s


def test_an_abandoned_attempt_never_reaches_the_provider(stub: ChartImgStub) -> None:
    """Setup slower than the budget: the caller gets `timeout`, and the helper thread, when it
    finally gets its client, must not send the request (it would spend quota unseen)."""
    stub.configure("BASIC", keys(ACC_1))
    release = threading.Event()

    def slow_factory() -> httpx2.Client:
        release.wait(10)
        return default_client()

    api = ChartImgHttp(stub.base_url, client_factory=slow_factory)
    assert api.render(chart_request(), ACC_1, 0.2).kind == "timeout"
    release.set()
    for thread in threading.enumerate():
        if thread.name == "chart-img-attempt":
            thread.join(timeout=10)
    assert stub.state()["total"] == 0


# --- the API key never escapes -------------------------------------------------------------------


def exception_texts(exc: BaseException) -> list[str]:
    return [
        str(exc),
        repr(exc),
        repr(exc.args),
        repr(vars(exc)),
        "".join(traceback.format_exception(exc)),
    ]


def test_a_key_the_http_stack_cannot_encode_raises_a_sanitized_error(stub: ChartImgStub) -> None:
    """httpx2 raises UnicodeEncodeError quoting the whole header value for a non-ASCII key."""
    secret = "clé-" + KEY_1
    with pytest.raises(ChartApiError) as raised:
        render(stub, account=Account("acc-1", secret, None))
    exc = raised.value
    assert exc.type_name == "UnicodeEncodeError"
    assert exc.__cause__ is None and exc.__context__ is None
    for text in exception_texts(exc):
        assert secret not in text and KEY_1 not in text


def test_a_key_with_a_control_character_is_a_network_error_without_the_key(
    stub: ChartImgStub,
) -> None:
    """h11 refuses the header with a LocalProtocolError quoting it; none of it is kept."""
    attempt = render(stub, account=Account("acc-1", KEY_1 + "\n", None))
    assert attempt.kind == "network_error"
    assert_no_key(attempt)
    assert stub.state()["total"] == 0


def test_an_unexpected_exception_quoting_the_key_is_reduced_to_its_type() -> None:
    class LeakyError(Exception):
        pass

    def leaky_factory() -> httpx2.Client:
        raise LeakyError(f"header x-api-key={KEY_1} rejected")

    api = ChartImgHttp("http://127.0.0.1:9", client_factory=leaky_factory)
    with pytest.raises(ChartApiError) as raised:
        api.render(chart_request(), ACC_1, 5)
    assert raised.value.type_name == "LeakyError"
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    for text in exception_texts(raised.value):
        assert KEY_1 not in text


def test_transport_errors_quoting_the_key_leave_no_trace() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError(f"refused for {request.headers['x-api-key']}", request=request)

    api = ChartImgHttp(
        "http://chart.invalid",
        client_factory=lambda: httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    attempt = api.render(chart_request(), ACC_1, 5)
    assert attempt.kind == "network_error"
    assert_no_key(attempt)


def test_a_provider_echoing_the_key_has_it_redacted(stub: ChartImgStub) -> None:
    attempt = render(stub, {"status": 401, "json": {"message": f"Invalid API key {KEY_1}"}})
    assert attempt.kind == "rejected"
    assert attempt.provider_message == "Invalid API key [redacted]"
    assert_no_key(attempt)


def test_real_mode_needs_an_account(stub: ChartImgStub) -> None:
    with pytest.raises(ValueError, match="account"):
        ChartImgHttp(stub.base_url).render(chart_request(), None, 5)


# --- scrubbing capped bodies ---------------------------------------------------------------------


def test_scrub_replaces_the_key_and_cuts_a_trailing_part_of_it_when_truncated() -> None:
    secret = "abcdef-secret"
    assert scrub(b"x abcdef-secret y", secret, truncated=False) == b"x [redacted] y"
    assert scrub(b"tail abcdef-se", secret, truncated=True) == b"tail "
    assert scrub(b"tail abcdef-se", secret, truncated=False) == b"tail abcdef-se"
    assert scrub(b"complete", secret, truncated=True) == b"complete"


def test_raw_response_keeps_only_the_two_headers() -> None:
    raw = RawResponse(429, "application/json", "5", b"{}")
    assert raw.headers() == {"content-type": "application/json", "retry-after": "5"}
    assert RawResponse(200, None, None, b"").headers() == {}
