"""A local stand-in for the Chart-IMG API (docs/spec/CHART_EXPORT.md §17).

Tests point `CHART_IMG_BASE_URL` at it; it listens on a free port of 127.0.0.1 and answers
`POST /v2/tradingview/advanced-chart` the way the provider does: key check, daily counter,
then a per-test script (format: contracts/chart_export/test_vectors/README.md), then Chart-IMG-like
validation, then the stub PNG. A test configures it from Python (`configure`) or, when the code
under test runs in another process, over HTTP:

- `POST /__stub/configure` with `{"plan", "keys", "script"}` (a vector's `stub` section),
- `GET /__stub/state` for what it saw, `POST /__stub/reset` to forget everything.

API keys are configuration input only: state, records, error messages and logs name accounts by
their id, so nothing the stub emits can leak a key into an assertion message or a log.
Each request runs on its own thread, so a scripted delay never holds up other requests.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx2

from devstack import REPO_ROOT
from devstack.loopback import LoopbackHttpServer
from states.chart_export.chart_api import (
    CHART_IMG_INTERVALS,
    CHART_IMG_SYMBOL_RE,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    PLANS,
    PNG_MAGIC,
    Plan,
)

STUB_PNG_PATH = REPO_ROOT / "contracts" / "chart_export" / "fixtures" / "stub_chart_400x300.png"
CHART_PATH = "/v2/tradingview/advanced-chart"
CONTROL_PREFIX = "/__stub/"
DEFAULT_PLAN = "BASIC"

_JSON = "application/json"
_MATCH_FIELDS = frozenset({"account", "symbol", "interval", "study"})
_RESPOND_FIELDS = frozenset(
    {"status", "json", "text", "headers", "pngOfSize", "delaySeconds", "closeConnection"}
)
_KEY_FIELDS = frozenset({"accountId", "dailyLimit", "usedToday"})


class StubConfigError(ValueError):
    """A configuration the stub cannot follow. Messages name accounts and indexes, never keys."""


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Which requests a script entry answers; None fields match anything."""

    account: str | None = None
    symbol: str | None = None
    interval: str | None = None
    study: str | None = None

    def fits(
        self, account: str, symbol: str | None, interval: str | None, studies: Sequence[str]
    ) -> bool:
        return (
            (self.account is None or self.account == account)
            and (self.symbol is None or self.symbol == symbol)
            and (self.interval is None or self.interval == interval)
            and (self.study is None or self.study in studies)
        )


@dataclass(frozen=True)
class Respond:
    """A scripted answer. `has_json` separates `"json": null` from no JSON body at all."""

    status: int = 200
    has_json: bool = False
    json_body: Any = None
    text: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    png_of_size: int | None = None
    delay_seconds: float = 0.0
    close_connection: bool = False


@dataclass
class _Entry:
    match: Match
    respond: Respond
    remaining: int


@dataclass
class _Account:
    account_id: str
    daily_limit: int
    used_today: int
    requests: int = 0
    over_limit: int = 0


@dataclass
class _Config:
    plan: Plan
    keys: dict[str, _Account]
    script: list[_Entry]


def _require_int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StubConfigError(f"{where} must be an integer >= {minimum}")
    return value


def _optional_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise StubConfigError(f"{where} must be a string")
    return value


def _parse_keys(keys: Mapping[str, Any]) -> dict[str, _Account]:
    parsed: dict[str, _Account] = {}
    seen: set[str] = set()
    for index, (api_key, spec) in enumerate(keys.items()):
        where = f"keys[{index}]"  # by position: the key itself must not appear in a message
        if not isinstance(api_key, str) or not api_key:
            raise StubConfigError(f"{where}: the API key must be a non-empty string")
        if not isinstance(spec, Mapping):
            raise StubConfigError(f"{where} must be an object")
        unknown = set(spec) - _KEY_FIELDS
        if unknown:
            raise StubConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        account_id = spec.get("accountId")
        if not isinstance(account_id, str) or not account_id:
            raise StubConfigError(f"{where}.accountId must be a non-empty string")
        if account_id in seen:
            raise StubConfigError(f"{where}: accountId {account_id!r} is used twice")
        seen.add(account_id)
        parsed[api_key] = _Account(
            account_id=account_id,
            daily_limit=_require_int(spec.get("dailyLimit"), f"{where}.dailyLimit", 0),
            used_today=_require_int(spec.get("usedToday", 0), f"{where}.usedToday", 0),
        )
    return parsed


def _parse_respond(respond: Mapping[str, Any], where: str) -> Respond:
    unknown = set(respond) - _RESPOND_FIELDS
    if unknown:
        raise StubConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    status = _require_int(respond.get("status", 200), f"{where}.status", 100)
    if status > 599:
        raise StubConfigError(f"{where}.status must be <= 599")
    headers = respond.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise StubConfigError(f"{where}.headers must map strings to strings")
    size = respond.get("pngOfSize")
    delay = respond.get("delaySeconds", 0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise StubConfigError(f"{where}.delaySeconds must be a number >= 0")
    close = respond.get("closeConnection", False)
    if not isinstance(close, bool):
        raise StubConfigError(f"{where}.closeConnection must be a boolean")
    return Respond(
        status=status,
        has_json="json" in respond,
        json_body=respond.get("json"),
        text=_optional_str(respond.get("text"), f"{where}.text"),
        headers=dict(headers),
        png_of_size=None if size is None else _require_int(size, f"{where}.pngOfSize", 8),
        delay_seconds=float(delay),
        close_connection=close,
    )


def _parse_script(script: Sequence[Any]) -> list[_Entry]:
    entries: list[_Entry] = []
    for index, entry in enumerate(script):
        where = f"script[{index}]"
        if not isinstance(entry, Mapping):
            raise StubConfigError(f"{where} must be an object")
        unknown = set(entry) - {"match", "times", "respond"}
        if unknown:
            raise StubConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        match = entry.get("match", {})
        respond = entry.get("respond", {})
        if not isinstance(match, Mapping) or not isinstance(respond, Mapping):
            raise StubConfigError(f"{where}: match and respond must be objects")
        unknown = set(match) - _MATCH_FIELDS
        if unknown:
            raise StubConfigError(f"{where}.match: unknown field(s) {sorted(unknown)}")
        fields = {k: _optional_str(v, f"{where}.match.{k}") for k, v in match.items()}
        entries.append(
            _Entry(
                match=Match(**fields),
                respond=_parse_respond(respond, f"{where}.respond"),
                remaining=_require_int(entry.get("times", 1), f"{where}.times", 1),
            )
        )
    return entries


def _parse_config(
    plan: str, keys: Mapping[str, Any] | None, script: Sequence[Any] | None
) -> _Config:
    if plan not in PLANS:
        raise StubConfigError(f"plan must be one of {sorted(PLANS)}")
    if keys is not None and not isinstance(keys, Mapping):
        raise StubConfigError("keys must be an object")
    if script is not None and (
        isinstance(script, (str, bytes)) or not isinstance(script, Sequence)
    ):
        raise StubConfigError("script must be an array")
    return _Config(PLANS[plan], _parse_keys(keys or {}), _parse_script(script or []))


# --- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay_seconds: float = 0.0
    close_connection: bool = False


def _json_answer(status: int, body: Any) -> _Answer:
    return _Answer(status, (("Content-Type", _JSON),), json.dumps(body).encode())


def padded_png(base: bytes, size: int) -> bytes:
    """`base` grown (or cut) to exactly `size` bytes, still starting with the PNG signature.

    Growth inserts a private ancillary chunk (`stUb`, which decoders skip) before IEND, so the
    result stays a valid PNG; when the gap is too small for a chunk header, zero bytes follow
    IEND (ignored by decoders). Sizes below the base image give its first `size` bytes.
    """
    if size <= len(base):
        return base[:size]
    iend = base.rfind(b"IEND")
    gap = size - len(base)
    if iend < 4 or gap < 12:
        return base + b"\x00" * gap
    chunk_type, data = b"stUb", b"\x00" * (gap - 12)
    crc = zlib.crc32(chunk_type + data).to_bytes(4, "big")
    chunk = len(data).to_bytes(4, "big") + chunk_type + data + crc
    start = iend - 4  # the IEND chunk begins with its 4-byte length
    return base[:start] + chunk + base[start:]


def _scripted_answer(respond: Respond, png: bytes) -> _Answer:
    if respond.close_connection:
        return _Answer(respond.status, delay_seconds=respond.delay_seconds, close_connection=True)
    content_type: str | None
    if respond.has_json:
        body, content_type = json.dumps(respond.json_body).encode(), _JSON
    elif respond.text is not None:
        body, content_type = respond.text.encode(), "text/plain; charset=utf-8"
    elif respond.png_of_size is not None:
        body, content_type = padded_png(png, respond.png_of_size), "image/png"
    elif respond.status == 200:
        body, content_type = png, "image/png"
    else:
        body, content_type = b"", None
    headers: dict[str, tuple[str, str]] = {}
    if content_type is not None:
        headers["content-type"] = ("Content-Type", content_type)
    for name, value in respond.headers.items():
        if name.lower() != "content-length":  # the stub always sends the true length
            headers[name.lower()] = (name, value)
    return _Answer(respond.status, tuple(headers.values()), body, respond.delay_seconds)


@dataclass(frozen=True)
class _Parsed:
    """What the stub reads from a request body; `ok` is False for bad JSON or a non-object."""

    ok: bool
    body: Mapping[str, Any]
    symbol: str | None
    interval: str | None
    studies: tuple[str, ...]


def _parse_body(raw: bytes) -> _Parsed:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _Parsed(False, {}, None, None, ())
    if not isinstance(body, dict):
        return _Parsed(False, {}, None, None, ())
    studies = body.get("studies")
    names = tuple(
        s["name"]
        for s in (studies if isinstance(studies, list) else [])
        if isinstance(s, dict) and isinstance(s.get("name"), str)
    )
    symbol, interval = body.get("symbol"), body.get("interval")
    return _Parsed(
        True,
        body,
        symbol if isinstance(symbol, str) else None,
        interval if isinstance(interval, str) else None,
        names,
    )


def _dimension(body: Mapping[str, Any], name: str, default: int) -> int | None:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def _validate(parsed: _Parsed, plan: Plan) -> _Answer | None:
    """Chart-IMG-like checks of a body no script entry answered; None when it would render."""
    if not parsed.ok:
        return _json_answer(400, {"message": "Invalid JSON Body"})
    if parsed.symbol is None or not CHART_IMG_SYMBOL_RE.match(parsed.symbol):
        return _json_answer(422, {"message": "Invalid Symbol"})
    if parsed.interval not in CHART_IMG_INTERVALS:
        return _json_answer(422, {"message": "Invalid Interval"})
    body = parsed.body
    width = _dimension(body, "width", DEFAULT_WIDTH)
    height = _dimension(body, "height", DEFAULT_HEIGHT)
    if width is None or height is None:
        return _json_answer(422, {"message": "Invalid Resolution"})
    if width > plan.max_width or height > plan.max_height:
        limit = f"{plan.max_width}x{plan.max_height}"
        return _json_answer(403, {"message": f"Exceed Max Usage Resolution Limit ({limit})"})
    counts = []
    for name in ("studies", "drawings"):
        items = body.get(name, [])
        if not isinstance(items, list):
            return _json_answer(422, {"message": f"Invalid {name.capitalize()}"})
        counts.append(len(items))
    if sum(counts) > plan.max_studies_drawings:
        limit = str(plan.max_studies_drawings)
        return _json_answer(403, {"message": f"Exceed Max Usage Parameter Limit ({limit})"})
    return None


def _utc_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- the server ----------------------------------------------------------------------------------


class ChartImgStub(LoopbackHttpServer):
    """ThreadingHTTPServer on a free loopback port, configured per test.

    All mutable state sits behind one lock; a handler takes its decision (and records the
    request) under the lock, then sleeps and writes outside it.
    """

    name = "chart-img-stub"

    def __init__(self, png_path: Path = STUB_PNG_PATH) -> None:
        super().__init__()
        self._png = png_path.read_bytes()
        if not self._png.startswith(PNG_MAGIC):
            raise ValueError(f"{png_path} is not a PNG")
        self._lock = threading.Lock()
        self._config = _parse_config(DEFAULT_PLAN, None, None)
        self._seen: list[dict[str, Any]] = []
        self._total = 0

    # -- lifecycle -----------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    @property
    def png(self) -> bytes:
        """The default answer's image: contracts/chart_export/fixtures/stub_chart_400x300.png."""
        return self._png

    # -- configuration and state -----------------------------------------------------------

    def configure(
        self,
        plan: str = DEFAULT_PLAN,
        keys: Mapping[str, Any] | None = None,
        script: Sequence[Any] | None = None,
    ) -> None:
        """Start a new scenario: replace plan, keys and script, and forget everything seen.

        `keys` maps apiKey → `{accountId, dailyLimit, usedToday}`; `script` is a vector's list
        of `{match, times, respond}`. Raises StubConfigError (and changes nothing) when invalid.
        """
        config = _parse_config(plan, keys, script)
        with self._lock:
            self._config = config
            self._seen = []
            self._total = 0

    def reset(self) -> None:
        """Back to a freshly started stub: plan BASIC, no keys, no script, nothing seen."""
        self.configure()

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot; accounts appear by id only, keys never.

        `total`: chart requests received (unknown keys included); `byAccount`: requests per
        account id that received any (the vectors' `stubRequests`); `accounts`: counters per
        configured account; `requests`: every chart request in arrival order; `script`: the
        uses left per entry.
        """
        with self._lock:
            accounts = {
                acc.account_id: {
                    "requests": acc.requests,
                    "usedToday": acc.used_today,
                    "overLimit": acc.over_limit,
                    "dailyLimit": acc.daily_limit,
                }
                for acc in self._config.keys.values()
            }
            return {
                "plan": self._config.plan.name,
                "total": self._total,
                "byAccount": {
                    acc.account_id: acc.requests
                    for acc in self._config.keys.values()
                    if acc.requests
                },
                "accounts": accounts,
                "requests": [dict(seen) for seen in self._seen],
                "script": [entry.remaining for entry in self._config.script],
            }

    # -- called from handler threads -------------------------------------------------------

    def _decide(self, api_key: str | None, raw: bytes) -> _Answer:
        parsed = _parse_body(raw)
        with self._lock:
            self._total += 1
            account = self._config.keys.get(api_key) if api_key else None
            entry_index: int | None = None
            if account is None:
                answer = _json_answer(403, {"message": "Forbidden"})
            else:
                account.requests += 1
                if account.used_today >= account.daily_limit:
                    account.over_limit += 1
                    answer = _json_answer(429, {"message": "Limit Exceeded"})
                else:
                    account.used_today += 1
                    entry_index = self._take_entry(account.account_id, parsed)
                    if entry_index is not None:
                        respond = self._config.script[entry_index].respond
                        answer = _scripted_answer(respond, self._png)
                    else:
                        answer = _validate(parsed, self._config.plan) or _Answer(
                            200, (("Content-Type", "image/png"),), self._png
                        )
            self._seen.append(
                {
                    "accountId": account.account_id if account is not None else None,
                    "symbol": parsed.symbol,
                    "interval": parsed.interval,
                    "studies": list(parsed.studies),
                    "status": None if answer.close_connection else answer.status,
                    "scriptEntry": entry_index,
                    "time": _utc_rfc3339(),
                    "monotonic": time.monotonic(),
                }
            )
            return answer

    def _take_entry(self, account_id: str, parsed: _Parsed) -> int | None:
        for index, entry in enumerate(self._config.script):
            if entry.remaining > 0 and entry.match.fits(
                account_id, parsed.symbol, parsed.interval, parsed.studies
            ):
                entry.remaining -= 1
                return index
        return None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)

    def _control(self, method: str, path: str, raw: bytes) -> _Answer:
        if method == "GET" and path == "/__stub/state":
            return _json_answer(200, self.state())
        if method == "POST" and path == "/__stub/reset":
            self.reset()
            return _json_answer(200, {"ok": True})
        if method == "POST" and path == "/__stub/configure":
            try:
                config = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            except (UnicodeDecodeError, ValueError):
                return _json_answer(400, {"message": "configuration is not JSON"})
            if not isinstance(config, dict) or set(config) - {"plan", "keys", "script"}:
                return _json_answer(400, {"message": "expected an object {plan, keys, script}"})
            try:
                self.configure(
                    plan=config.get("plan", DEFAULT_PLAN),
                    keys=config.get("keys"),
                    script=config.get("script"),
                )
            except StubConfigError as exc:
                return _json_answer(400, {"message": str(exc)})
            return _json_answer(200, {"ok": True})
        return _json_answer(404, {"message": "Not Found"})


def _make_handler(stub: ChartImgStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "chart-img-stub/1"

        def _read_body(self) -> bytes:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            return self.rfile.read(length) if length > 0 else b""

        def _route(self) -> None:
            raw = self._read_body()
            path = self.path.split("?", 1)[0]
            if path == CHART_PATH and self.command == "POST":
                answer = stub._decide(self.headers.get("x-api-key"), raw)
            elif path.startswith(CONTROL_PREFIX):
                answer = stub._control(self.command, path, raw)
            elif path == CHART_PATH:
                answer = _json_answer(405, {"message": "Method Not Allowed"})
            else:
                answer = _json_answer(404, {"message": "Not Found"})
            stub._sleep(answer.delay_seconds)
            if answer.close_connection:
                self.close_connection = True  # drop: the client gets no status line at all
                return
            try:
                self.send_response(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout or size cap); nothing to deliver to

        do_POST = _route
        do_GET = _route

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output clean; request lines could also carry query strings

    return Handler


# --- remote control (another process owns the stub) ----------------------------------------------


def _control_client(timeout_s: float) -> httpx2.Client:
    # trust_env=False: a proxy from the environment must never see loopback control traffic.
    return httpx2.Client(timeout=timeout_s, trust_env=False, follow_redirects=False)


def remote_configure(
    base_url: str,
    plan: str = DEFAULT_PLAN,
    keys: Mapping[str, Any] | None = None,
    script: Sequence[Any] | None = None,
    timeout_s: float = 5.0,
) -> None:
    """`configure` on a stub served by another process. Raises StubConfigError on a 400."""
    payload = {"plan": plan, "keys": dict(keys or {}), "script": list(script or [])}
    with _control_client(timeout_s) as client:
        response = client.post(f"{base_url.rstrip('/')}/__stub/configure", json=payload)
    if response.status_code == 400:
        raise StubConfigError(str(response.json().get("message", "invalid configuration")))
    response.raise_for_status()


def remote_state(base_url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """`state()` of a stub served by another process."""
    with _control_client(timeout_s) as client:
        response = client.get(f"{base_url.rstrip('/')}/__stub/state")
    response.raise_for_status()
    state = response.json()
    if not isinstance(state, dict):
        raise ValueError("the stub answered a non-object state")
    return state


def remote_reset(base_url: str, timeout_s: float = 5.0) -> None:
    """`reset()` of a stub served by another process."""
    with _control_client(timeout_s) as client:
        client.post(f"{base_url.rstrip('/')}/__stub/reset").raise_for_status()
