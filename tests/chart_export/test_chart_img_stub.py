"""The local Chart-IMG stub (spec §17): every behaviour a worker test relies on."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx2
import pytest

from devstack.chart_img_stub import (
    CHART_PATH,
    STUB_PNG_PATH,
    ChartImgStub,
    StubConfigError,
    padded_png,
    remote_configure,
    remote_reset,
    remote_state,
)
from engine.clock import parse_rfc3339
from states.chart_export.chart_api import PNG_MAGIC

from .helpers import ACC_1, ACC_2, KEY_1, KEY_2, keys


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(trust_env=False, timeout=10) as c:
        yield c


def body(
    symbol: str = "BINANCE:BTCUSDT",
    interval: str = "1D",
    studies: Sequence[str] = ("Volume",),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "interval": interval,
        "studies": [{"name": s} for s in studies],
        **extra,
    }


def post(
    client: httpx2.Client,
    stub: ChartImgStub,
    key: str | None = KEY_1,
    payload: Mapping[str, Any] | None = None,
    content: bytes | None = None,
) -> httpx2.Response:
    headers = {"x-api-key": key} if key is not None else {}
    if content is None:
        content = json.dumps(payload if payload is not None else body()).encode()
    return client.post(
        stub.base_url + CHART_PATH,
        content=content,
        headers={**headers, "content-type": "application/json"},
    )


def png_chunks(data: bytes) -> list[bytes]:
    """Chunk types of a PNG, checking every length and CRC on the way."""
    assert data.startswith(PNG_MAGIC)
    pos, types = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        assert zlib.crc32(kind + payload) == crc
        types.append(kind)
        pos += 12 + length
    assert pos == len(data)
    return types


# --- 1. key check --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "unknown-key", KEY_1.upper()])
def test_missing_or_unknown_key_is_forbidden(
    stub: ChartImgStub, client: httpx2.Client, key: str | None
) -> None:
    stub.configure("BASIC", keys(ACC_1), [{"match": {}, "respond": {"status": 500}}])
    response = post(client, stub, key=key)
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    state = stub.state()
    assert state["total"] == 1
    assert state["byAccount"] == {}
    assert state["accounts"]["acc-1"]["requests"] == 0
    assert state["requests"][0]["accountId"] is None
    assert state["requests"][0]["status"] == 403
    assert state["script"] == [1]  # the script is not reached without a valid key


# --- 2. daily counter ----------------------------------------------------------------------------


def test_requests_are_counted_and_past_the_daily_limit_answered_429(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    stub.configure("BASIC", keys(ACC_1, daily_limit=3, used_today=1))
    assert [post(client, stub).status_code for _ in range(2)] == [200, 200]
    over = post(client, stub)
    assert over.status_code == 429
    assert over.json() == {"message": "Limit Exceeded"}
    account = stub.state()["accounts"]["acc-1"]
    assert account == {"requests": 3, "usedToday": 3, "overLimit": 1, "dailyLimit": 3}


def test_a_zero_daily_limit_refuses_every_request_before_the_script(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    stub.configure("BASIC", keys(ACC_1, daily_limit=0), [{"match": {}, "respond": {}}])
    assert post(client, stub).status_code == 429
    state = stub.state()
    assert state["accounts"]["acc-1"]["overLimit"] == 1
    assert state["script"] == [1]


def test_counters_are_per_account(stub: ChartImgStub, client: httpx2.Client) -> None:
    stub.configure("BASIC", keys(ACC_1, ACC_2, daily_limit=1))
    assert post(client, stub, key=KEY_1).status_code == 200
    assert post(client, stub, key=KEY_2).status_code == 200
    assert post(client, stub, key=KEY_2).status_code == 429
    state = stub.state()
    assert state["byAccount"] == {"acc-1": 1, "acc-2": 2}
    assert state["accounts"]["acc-1"]["overLimit"] == 0
    assert state["accounts"]["acc-2"]["overLimit"] == 1


# --- 3. script -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "fits", "misses"),
    [
        ({"account": "acc-2"}, (KEY_2, body()), (KEY_1, body())),
        ({"symbol": "BYBIT:BTCUSDT.P"}, (KEY_1, body("BYBIT:BTCUSDT.P")), (KEY_1, body())),
        ({"interval": "1M"}, (KEY_1, body(interval="1M")), (KEY_1, body(interval="1m"))),
        (
            {"study": "Relative Strength Index"},
            (KEY_1, body(studies=("Volume", "Relative Strength Index"))),
            (KEY_1, body(studies=("Volume",))),
        ),
        (
            {"account": "acc-1", "interval": "1D"},
            (KEY_1, body(interval="1D")),
            (KEY_1, body(interval="1W")),
        ),
    ],
)
def test_script_match_fields(
    stub: ChartImgStub,
    client: httpx2.Client,
    match: dict[str, str],
    fits: tuple[str, dict[str, Any]],
    misses: tuple[str, dict[str, Any]],
) -> None:
    stub.configure("BASIC", keys(ACC_1, ACC_2), [{"match": match, "respond": {"status": 504}}])
    assert post(client, stub, key=misses[0], payload=misses[1]).status_code == 200
    assert post(client, stub, key=fits[0], payload=fits[1]).status_code == 504
    assert [r["scriptEntry"] for r in stub.state()["requests"]] == [None, 0]


def test_times_and_first_matching_entry_with_uses_left(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    script = [
        {"match": {}, "times": 2, "respond": {"status": 500}},
        {"match": {}, "respond": {"status": 502}},
        {"match": {"account": "acc-1"}, "times": 1, "respond": {"status": 503}},
    ]
    stub.configure("BASIC", keys(ACC_1), script)
    statuses = [post(client, stub).status_code for _ in range(5)]
    assert statuses == [500, 500, 502, 503, 200]
    assert stub.state()["script"] == [0, 0, 0]


def test_script_json_text_and_headers(stub: ChartImgStub, client: httpx2.Client) -> None:
    script = [
        {
            "match": {},
            "respond": {
                "status": 429,
                "json": {"message": "Too Many Requests"},
                "headers": {"Retry-After": "7"},
            },
        },
        {
            "match": {},
            "respond": {
                "status": 200,
                "headers": {"Content-Type": "text/html"},
                "text": "<html><body>busy</body></html>",
            },
        },
        {"match": {}, "respond": {"status": 200, "json": None}},
    ]
    stub.configure("BASIC", keys(ACC_1), script)
    limited = post(client, stub)
    assert (limited.status_code, limited.json()) == (429, {"message": "Too Many Requests"})
    assert limited.headers["retry-after"] == "7"
    assert limited.headers["content-type"] == "application/json"
    html = post(client, stub)
    assert (html.status_code, html.headers["content-type"]) == (200, "text/html")
    assert html.text == "<html><body>busy</body></html>"
    null = post(client, stub)
    assert (null.status_code, null.content, null.headers["content-type"]) == (
        200,
        b"null",
        "application/json",
    )


def test_script_status_without_body_and_200_without_body(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    script = [
        {"match": {}, "respond": {"status": 500}},
        {"match": {}, "respond": {}},
        {"match": {}, "respond": {"text": "", "headers": {"Content-Type": "image/png"}}},
    ]
    stub.configure("BASIC", keys(ACC_1), script)
    empty_500 = post(client, stub)
    assert (empty_500.status_code, empty_500.content) == (500, b"")
    default = post(client, stub)
    assert (default.status_code, default.content) == (200, stub.png)
    empty_png = post(client, stub)
    assert (empty_png.status_code, empty_png.headers["content-type"]) == (200, "image/png")
    assert empty_png.content == b""


@pytest.mark.parametrize("size", [300_000, len(STUB_PNG_PATH.read_bytes()) + 12, 5000])
def test_png_of_size_is_a_valid_png_of_exactly_that_size(
    stub: ChartImgStub, client: httpx2.Client, size: int
) -> None:
    stub.configure("BASIC", keys(ACC_1), [{"match": {}, "respond": {"pngOfSize": size}}])
    response = post(client, stub)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert len(response.content) == size
    types = png_chunks(response.content)
    assert types[0] == b"IHDR" and types[-1] == b"IEND" and b"stUb" in types


def test_padded_png_below_or_just_above_the_base_size() -> None:
    base = STUB_PNG_PATH.read_bytes()
    assert padded_png(base, 8) == PNG_MAGIC
    assert padded_png(base, len(base)) == base
    assert padded_png(base, len(base) + 5) == base + b"\x00" * 5


def test_delay_then_answer(stub: ChartImgStub, client: httpx2.Client) -> None:
    script = [{"match": {}, "respond": {"status": 503, "delaySeconds": 0.2}}]
    stub.configure("BASIC", keys(ACC_1), script)
    assert post(client, stub).status_code == 503


def test_close_connection_drops_without_an_answer(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    stub.configure("BASIC", keys(ACC_1), [{"match": {}, "respond": {"closeConnection": True}}])
    with pytest.raises(httpx2.TransportError):
        post(client, stub)
    seen = stub.state()["requests"]
    assert [(r["accountId"], r["status"], r["scriptEntry"]) for r in seen] == [("acc-1", None, 0)]
    assert post(client, stub).status_code == 200  # the entry is used up, the stub still serves


def test_script_answers_before_validation(stub: ChartImgStub, client: httpx2.Client) -> None:
    stub.configure("BASIC", keys(ACC_1), [{"match": {}, "respond": {"status": 504}}])
    assert post(client, stub, content=b"{not json").status_code == 504
    assert post(client, stub, content=b"{not json").status_code == 400


def test_an_entry_with_fields_does_not_fit_a_body_without_them(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    stub.configure("BASIC", keys(ACC_1), [{"match": {"symbol": "X:Y"}, "respond": {}}])
    assert post(client, stub, content=b"[]").status_code == 400
    assert stub.state()["script"] == [1]


# --- 4. validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"{not json", 400, "Invalid JSON Body"),
        (b"", 400, "Invalid JSON Body"),
        (b'["a list"]', 400, "Invalid JSON Body"),
        (json.dumps(body(symbol="BTCUSDT")).encode(), 422, "Invalid Symbol"),
        (json.dumps(body(symbol="binance:BTCUSDT")).encode(), 422, "Invalid Symbol"),
        (json.dumps(body(symbol="BINANCE:BTC/USDT")).encode(), 422, "Invalid Symbol"),
        (json.dumps({"interval": "1D"}).encode(), 422, "Invalid Symbol"),
        (json.dumps(body(interval="1d")).encode(), 422, "Invalid Interval"),
        (json.dumps(body(interval="1H")).encode(), 422, "Invalid Interval"),
        (json.dumps({"symbol": "BINANCE:BTCUSDT"}).encode(), 422, "Invalid Interval"),
        (json.dumps(body(width="wide")).encode(), 422, "Invalid Resolution"),
        (json.dumps(body(studies=(), drawings={})).encode(), 422, "Invalid Drawings"),
    ],
)
def test_chart_img_like_validation(
    stub: ChartImgStub, client: httpx2.Client, content: bytes, status: int, message: str
) -> None:
    stub.configure("BASIC", keys(ACC_1))
    response = post(client, stub, content=content)
    assert (response.status_code, response.json()) == (status, {"message": message})


@pytest.mark.parametrize(
    ("plan", "extra", "status"),
    [
        ("BASIC", {"width": 800, "height": 600}, 200),
        ("BASIC", {"width": 801}, 403),
        ("BASIC", {"height": 601}, 403),
        ("PRO", {"width": 1920, "height": 1080}, 200),
        ("PRO", {"width": 1920, "height": 1081}, 403),
        ("ENTERPRISE", {"width": 2048, "height": 1920}, 200),
    ],
)
def test_resolution_over_the_plan_is_exceed_max_usage(
    stub: ChartImgStub, client: httpx2.Client, plan: str, extra: dict[str, int], status: int
) -> None:
    stub.configure(plan, keys(ACC_1))
    response = post(client, stub, payload={**body(), **extra})
    assert response.status_code == status
    if status == 403:
        assert response.json()["message"].startswith("Exceed Max Usage")


@pytest.mark.parametrize(
    ("plan", "studies", "drawings", "status"),
    [
        ("BASIC", 3, 0, 200),
        ("BASIC", 2, 1, 200),
        ("BASIC", 2, 2, 403),
        ("BASIC", 4, 0, 403),
        ("PRO", 3, 2, 200),
        ("PRO", 3, 3, 403),
    ],
)
def test_studies_plus_drawings_over_the_plan_is_exceed_max_usage(
    stub: ChartImgStub,
    client: httpx2.Client,
    plan: str,
    studies: int,
    drawings: int,
    status: int,
) -> None:
    stub.configure(plan, keys(ACC_1))
    payload = body(studies=[f"S{i}" for i in range(studies)], drawings=[{}] * drawings)
    response = post(client, stub, payload=payload)
    assert response.status_code == status
    if status == 403:
        assert response.json()["message"].startswith("Exceed Max Usage")


# --- 5. default answer ---------------------------------------------------------------------------


def test_default_answer_is_the_contract_png(stub: ChartImgStub, client: httpx2.Client) -> None:
    stub.configure("BASIC", keys(ACC_1))
    response = post(client, stub)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == STUB_PNG_PATH.read_bytes()


# --- state, reset, remote control ----------------------------------------------------------------


def test_state_records_every_request_seen(stub: ChartImgStub, client: httpx2.Client) -> None:
    stub.configure("BASIC", keys(ACC_1), [{"match": {}, "respond": {"status": 422}}])
    post(client, stub, payload=body("BINANCE:ETHUSDT", "1W", ("Volume", "MACD")))
    post(client, stub, key=None)
    post(client, stub)
    seen = stub.state()["requests"]
    assert [
        (r["accountId"], r["symbol"], r["interval"], r["studies"], r["status"]) for r in seen
    ] == [
        ("acc-1", "BINANCE:ETHUSDT", "1W", ["Volume", "MACD"], 422),
        (None, "BINANCE:BTCUSDT", "1D", ["Volume"], 403),
        ("acc-1", "BINANCE:BTCUSDT", "1D", ["Volume"], 200),
    ]
    for record in seen:
        assert record["time"].endswith("Z") and parse_rfc3339(record["time"]) is not None
    monotonic = [r["monotonic"] for r in seen]
    assert monotonic == sorted(monotonic)


def test_keys_never_appear_in_state_or_errors(stub: ChartImgStub, client: httpx2.Client) -> None:
    stub.configure("BASIC", keys(ACC_1, ACC_2), [{"match": {"account": "acc-2"}, "respond": {}}])
    post(client, stub, key=KEY_1)
    post(client, stub, key=KEY_2)
    post(client, stub, key="wrong-" + KEY_1)
    over_http = client.get(stub.base_url + "/__stub/state").text
    for text in (json.dumps(stub.state()), over_http):
        assert KEY_1 not in text and KEY_2 not in text
        assert "test-only" not in text
    duplicate = {KEY_1: {"accountId": "acc-1", "dailyLimit": 1, "usedToday": 0}}
    duplicate[KEY_2] = {"accountId": "acc-1", "dailyLimit": 1, "usedToday": 0}
    with pytest.raises(StubConfigError) as raised:
        stub.configure("BASIC", duplicate)
    assert KEY_1 not in str(raised.value) and KEY_2 not in str(raised.value)
    bad = {KEY_1: {"accountId": "acc-1", "dailyLimit": -1, "usedToday": 0}}
    answer = client.post(stub.base_url + "/__stub/configure", json={"keys": bad})
    assert answer.status_code == 400
    assert KEY_1 not in answer.text


def test_reset_forgets_configuration_and_everything_seen(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    stub.configure("PRO", keys(ACC_1), [{"match": {}, "times": 3, "respond": {"status": 500}}])
    assert post(client, stub).status_code == 500
    stub.reset()
    assert stub.state() == {
        "plan": "BASIC",
        "total": 0,
        "byAccount": {},
        "accounts": {},
        "requests": [],
        "script": [],
    }
    assert post(client, stub).status_code == 403  # the key is gone too


def test_configure_starts_a_new_scenario(stub: ChartImgStub, client: httpx2.Client) -> None:
    stub.configure("BASIC", keys(ACC_1))
    post(client, stub)
    stub.configure("BASIC", keys(ACC_1, used_today=5))
    state = stub.state()
    assert (state["total"], state["requests"]) == (0, [])
    assert state["accounts"]["acc-1"]["usedToday"] == 5


@pytest.mark.parametrize(
    ("plan", "key_table", "script", "fragment"),
    [
        ("FREE", {}, [], "plan"),
        ("BASIC", {KEY_1: {"accountId": "acc-1"}}, [], "dailyLimit"),
        ("BASIC", {KEY_1: {"accountId": "", "dailyLimit": 1}}, [], "accountId"),
        ("BASIC", {KEY_1: {"accountId": "a", "dailyLimit": 1, "extra": 1}}, [], "unknown"),
        ("BASIC", {}, [{"match": {"acount": "a"}, "respond": {}}], "unknown"),
        ("BASIC", {}, [{"match": {}, "respond": {"status": 700}}], "status"),
        ("BASIC", {}, [{"match": {}, "respond": {"delaySeconds": -1}}], "delaySeconds"),
        ("BASIC", {}, [{"match": {}, "times": 0, "respond": {}}], "times"),
        ("BASIC", {}, [{"match": {}, "respond": {"pngOfSize": 4}}], "pngOfSize"),
        ("BASIC", {}, [{"match": {}, "respond": {"headers": {"A": 1}}}], "headers"),
    ],
)
def test_invalid_configuration_is_refused_and_changes_nothing(
    stub: ChartImgStub,
    plan: str,
    key_table: dict[str, Any],
    script: list[Any],
    fragment: str,
) -> None:
    stub.configure("PRO", keys(ACC_1))
    with pytest.raises(StubConfigError, match=fragment):
        stub.configure(plan, key_table, script)
    assert stub.state()["plan"] == "PRO"
    assert "acc-1" in stub.state()["accounts"]


def test_remote_control_from_another_client(stub: ChartImgStub, client: httpx2.Client) -> None:
    script = [{"match": {"account": "acc-1"}, "respond": {"status": 500}}]
    remote_configure(stub.base_url, "BASIC", keys(ACC_1), script)
    assert post(client, stub).status_code == 500
    assert remote_state(stub.base_url) == stub.state()
    assert remote_state(stub.base_url)["byAccount"] == {"acc-1": 1}
    with pytest.raises(StubConfigError, match="plan"):
        remote_configure(stub.base_url, "NOPE")
    remote_reset(stub.base_url)
    assert stub.state()["total"] == 0
    assert post(client, stub).status_code == 403


def test_http_configure_takes_a_vector_stub_section(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    case = json.loads(
        (STUB_PNG_PATH.parents[1] / "test_vectors" / "cases" / "oversized_png.json").read_text()
    )
    answer = client.post(stub.base_url + "/__stub/configure", json=case["stub"])
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    key = next(iter(case["stub"]["keys"]))
    assert len(post(client, stub, key=key).content) == 300_000


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", CHART_PATH, 405), ("POST", "/v1/chart", 404), ("GET", "/__stub/nothing", 404)],
)
def test_other_routes(
    stub: ChartImgStub, client: httpx2.Client, method: str, path: str, status: int
) -> None:
    assert client.request(method, stub.base_url + path).status_code == status


# --- concurrency ---------------------------------------------------------------------------------


def test_a_slow_reply_does_not_hold_up_other_requests(
    stub: ChartImgStub, client: httpx2.Client
) -> None:
    script = [{"match": {"account": "acc-2"}, "respond": {"status": 200, "delaySeconds": 1.0}}]
    stub.configure("BASIC", keys(ACC_1, ACC_2), script)
    results: dict[str, int] = {}

    def slow() -> None:
        with httpx2.Client(trust_env=False, timeout=10) as own:
            results["slow"] = post(own, stub, key=KEY_2).status_code

    thread = threading.Thread(target=slow)
    thread.start()
    while not stub.state()["requests"]:  # the slow request is in the stub, sleeping
        threading.Event().wait(0.01)
    assert post(client, stub, key=KEY_1).status_code == 200
    assert thread.is_alive(), "the fast request was answered only after the slow one"
    thread.join(timeout=10)
    assert results == {"slow": 200}
    assert stub.state()["byAccount"] == {"acc-1": 1, "acc-2": 1}


def test_parallel_requests_are_all_counted(stub: ChartImgStub) -> None:
    stub.configure("BASIC", keys(ACC_1, daily_limit=50))
    statuses: list[int] = []
    lock = threading.Lock()

    def burst() -> None:
        with httpx2.Client(trust_env=False, timeout=10) as own:
            for _ in range(5):
                status = post(own, stub).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [200] * 20
    assert stub.state()["accounts"]["acc-1"] == {
        "requests": 20,
        "usedToday": 20,
        "overLimit": 0,
        "dailyLimit": 50,
    }


def test_stop_wakes_a_handler_sleeping_on_a_delay() -> None:
    with ChartImgStub() as own:
        own.configure("BASIC", keys(ACC_1), [{"match": {}, "respond": {"delaySeconds": 30}}])
        errors: list[BaseException] = []

        def call() -> None:
            try:
                with httpx2.Client(trust_env=False, timeout=60) as c:
                    post(c, own)
            except Exception as exc:  # the answer comes after stop; either outcome is fine
                errors.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        while not own.state()["requests"]:
            threading.Event().wait(0.01)
    thread.join(timeout=10)
    assert not thread.is_alive()
