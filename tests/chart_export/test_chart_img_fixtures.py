"""`mock` (FixtureChartApi) and `record` (RecordingChartApi) modes, spec §14."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from adapters.chart_img import (
    ChartImgHttp,
    FixtureChartApi,
    FixtureInvalid,
    RawChartApi,
    RawResponse,
    RecordingChartApi,
    fixture_document,
)
from devstack import REPO_ROOT
from devstack.chart_img_stub import STUB_PNG_PATH, ChartImgStub
from states.chart_export.chart_api import ChartApi, fixture_stem

from .helpers import ACC_1, KEY_1, chart_request, keys

CONTRACT_FIXTURES = REPO_ROOT / "contracts" / "chart_export" / "fixtures"
FIXTURE_SCHEMA = json.loads(
    (CONTRACT_FIXTURES / "chart_img_fixture_response.schema.json").read_text()
)
VOL = chart_request(template_id="ctpl_price_ma1226_vol_v1")
PSAR = chart_request(template_id="ctpl_price_psar_adi_v1")


def write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document))


def every_file_text(folder: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir())]


# --- mock ----------------------------------------------------------------------------------------


def test_contract_png_fixture_is_served_as_ok() -> None:
    api = FixtureChartApi(CONTRACT_FIXTURES / "mock")
    attempt = api.render(VOL, None, 10)
    png = (CONTRACT_FIXTURES / "mock" / f"{fixture_stem(VOL)}.png").read_bytes()
    assert (attempt.kind, attempt.http_status, attempt.png, attempt.bytes) == (
        "ok",
        200,
        png,
        len(png),
    )


def test_contract_error_fixture_is_that_response() -> None:
    attempt = FixtureChartApi(CONTRACT_FIXTURES / "mock").render(PSAR, ACC_1, 10)
    assert (attempt.kind, attempt.http_status) == ("server_error", 500)
    assert attempt.provider_message == "Something Went Wrong"


def test_no_fixture_is_fixture_missing(tmp_path: Path) -> None:
    api = FixtureChartApi(tmp_path)
    assert not api.has_fixture(VOL)
    attempt = api.render(VOL, None, 10)
    assert (attempt.kind, attempt.http_status, attempt.png) == ("fixture_missing", None, None)
    assert FixtureChartApi(tmp_path / "absent").render(VOL, None, 10).kind == "fixture_missing"


def test_the_token_keeps_minutes_and_months_apart(tmp_path: Path) -> None:
    month, minute = chart_request(timeframe="1M"), chart_request(timeframe="1m")
    (tmp_path / f"{fixture_stem(month)}.png").write_bytes(STUB_PNG_PATH.read_bytes())
    api = FixtureChartApi(tmp_path)
    assert api.render(month, None, 10).kind == "ok"
    assert api.render(minute, None, 10).kind == "fixture_missing"


def test_a_longer_template_id_does_not_match_a_shorter_stem(tmp_path: Path) -> None:
    short, long = chart_request(template_id="ctpl_a_v1"), chart_request(template_id="ctpl_a_v10")
    write_json(tmp_path / f"{fixture_stem(long)}__500.json", {"status": 500})
    assert FixtureChartApi(tmp_path).render(short, None, 10).kind == "fixture_missing"
    assert FixtureChartApi(tmp_path).render(long, None, 10).kind == "server_error"


@pytest.mark.parametrize(
    ("document", "kind", "extra"),
    [
        ({"status": 429, "json": {"message": "LIMIT EXCEEDED"}}, "limit_exceeded", {}),
        (
            {
                "status": 429,
                "headers": {"content-type": "application/json", "retry-after": "12"},
                "json": {"message": "Too Many Requests"},
            },
            "rate_limited",
            {"retry_after_s": 12.0},
        ),
        ({"status": 504}, "server_error", {}),
        (
            {"status": 422, "json": {"message": "Invalid Interval"}},
            "rejected",
            {"provider_message": "Invalid Interval"},
        ),
        (
            {"status": 200, "headers": {"content-type": "text/html"}, "text": "<b>busy</b>"},
            "invalid_image",
            {"reason": "content_type"},
        ),
        (
            {"status": 200, "headers": {"content-type": "image/png"}, "text": "not a png"},
            "invalid_image",
            {"reason": "not_png"},
        ),
        ({"status": 200, "headers": {"content-type": "image/png"}}, "invalid_image", {}),
    ],
)
def test_status_fixtures_get_the_real_classification(
    tmp_path: Path, document: dict[str, Any], kind: str, extra: dict[str, Any]
) -> None:
    assert not list(Draft202012Validator(FIXTURE_SCHEMA).iter_errors(document))
    write_json(tmp_path / f"{fixture_stem(VOL)}__{document['status']}.json", document)
    attempt = FixtureChartApi(tmp_path).render(VOL, None, 10)
    assert (attempt.kind, attempt.http_status) == (kind, document["status"])
    for name, value in extra.items():
        assert getattr(attempt, name) == value


def test_png_fixture_over_the_cap_is_too_large(tmp_path: Path) -> None:
    (tmp_path / f"{fixture_stem(VOL)}.png").write_bytes(STUB_PNG_PATH.read_bytes())
    attempt = FixtureChartApi(tmp_path, max_png_bytes=1024).render(VOL, None, 10)
    assert (attempt.kind, attempt.reason, attempt.bytes) == ("invalid_image", "too_large", 1025)


def test_png_wins_over_status_fixtures_and_the_lowest_status_wins(tmp_path: Path) -> None:
    stem = fixture_stem(VOL)
    write_json(tmp_path / f"{stem}__503.json", {"status": 503})
    write_json(tmp_path / f"{stem}__429.json", {"status": 429})
    api = FixtureChartApi(tmp_path)
    assert api.render(VOL, None, 10).http_status == 429
    (tmp_path / f"{stem}.png").write_bytes(STUB_PNG_PATH.read_bytes())
    assert api.render(VOL, None, 10).kind == "ok"


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"status": "500"}',
        '{"status": 99}',
        '{"status": 500, "body": "x"}',
        '{"status": 500, "headers": {"x-api-key": "k"}}',
        '{"status": 500, "json": {}, "text": ""}',
        json.dumps({"status": 500, "text": "x" * 4097}),
    ],
)
def test_invalid_fixture_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    name = f"{fixture_stem(VOL)}__500.json"
    (tmp_path / name).write_text(content)
    with pytest.raises(FixtureInvalid, match=name):
        FixtureChartApi(tmp_path).render(VOL, None, 10)


# --- record --------------------------------------------------------------------------------------


@pytest.fixture
def recorder_for(stub: ChartImgStub, tmp_path: Path) -> Any:
    def make(*script: dict[str, Any], **options: Any) -> RecordingChartApi:
        stub.configure("BASIC", keys(ACC_1), list(script))
        return RecordingChartApi(ChartImgHttp(stub.base_url), tmp_path, **options)

    return make


def assert_clean(folder: Path) -> None:
    """No key in any saved byte, no temporary file left, every JSON fixture schema-valid."""
    for name, data in every_file_text(folder):
        assert KEY_1.encode() not in data, name
        assert not name.startswith("."), name
        if name.endswith(".json"):
            document = json.loads(data)
            assert not list(Draft202012Validator(FIXTURE_SCHEMA).iter_errors(document)), name


def test_record_saves_a_png_and_replays_it(
    recorder_for: Any, stub: ChartImgStub, tmp_path: Path
) -> None:
    recorded: list[Path] = []
    api = recorder_for(on_recorded=recorded.append)
    assert not api.has_fixture(VOL)
    attempt = api.render(VOL, ACC_1, 10)
    assert attempt.kind == "ok"
    path = tmp_path / f"{fixture_stem(VOL)}.png"
    assert recorded == [path]
    assert path.read_bytes() == STUB_PNG_PATH.read_bytes()
    assert api.has_fixture(VOL)
    replay = api.render(VOL, ACC_1, 10)
    assert (replay.kind, replay.png) == ("ok", STUB_PNG_PATH.read_bytes())
    assert stub.state()["total"] == 1  # the replay made no call
    assert_clean(tmp_path)


def test_record_saves_a_rejection_with_only_the_allowed_headers(
    recorder_for: Any, stub: ChartImgStub, tmp_path: Path
) -> None:
    respond = {
        "status": 422,
        "json": {"message": "Invalid Interval"},
        "headers": {"Retry-After": "5", "X-Request-Id": "r-1", "Set-Cookie": "s=1"},
    }
    api = recorder_for({"match": {}, "respond": respond})
    assert api.render(VOL, ACC_1, 10).kind == "rejected"
    saved = json.loads((tmp_path / f"{fixture_stem(VOL)}__422.json").read_text())
    assert saved == {
        "status": 422,
        "headers": {"content-type": "application/json", "retry-after": "5"},
        "json": {"message": "Invalid Interval"},
    }
    replay = api.render(VOL, ACC_1, 10)
    assert (replay.kind, replay.provider_message) == ("rejected", "Invalid Interval")
    assert stub.state()["total"] == 1
    assert_clean(tmp_path)


def test_record_saves_a_non_json_body_as_text_of_at_most_4096_characters(
    recorder_for: Any, tmp_path: Path
) -> None:
    html = "<html>" + "busy " * 2000 + "</html>"
    respond = {"status": 200, "headers": {"Content-Type": "text/html"}, "text": html}
    api = recorder_for({"match": {}, "respond": respond})
    attempt = api.render(VOL, ACC_1, 10)
    assert (attempt.kind, attempt.reason) == ("invalid_image", "content_type")
    saved = json.loads((tmp_path / f"{fixture_stem(VOL)}__200.json").read_text())
    assert saved["headers"] == {"content-type": "text/html"}
    assert saved["text"] == html[:4096]
    assert api.render(VOL, ACC_1, 10).reason == "content_type"
    assert_clean(tmp_path)


@pytest.mark.parametrize(
    "respond",
    [
        {"status": 500, "json": {"message": "Something Went Wrong"}},
        {"status": 429, "json": {"message": "Limit Exceeded"}},
        {"status": 429, "json": {"message": "Too Many Requests"}, "headers": {"Retry-After": "1"}},
    ],
)
def test_transient_answers_are_not_saved_by_default(
    recorder_for: Any, stub: ChartImgStub, tmp_path: Path, respond: dict[str, Any]
) -> None:
    api = recorder_for({"match": {}, "respond": respond})
    assert api.render(VOL, ACC_1, 10).http_status == respond["status"]
    assert list(tmp_path.iterdir()) == []
    assert api.render(VOL, ACC_1, 10).kind == "ok"  # the retry reached the provider again
    assert stub.state()["total"] == 2


def test_transient_answers_are_saved_on_request(recorder_for: Any, tmp_path: Path) -> None:
    respond = {
        "status": 429,
        "json": {"message": "Too Many Requests"},
        "headers": {"Retry-After": "1"},
    }
    api = recorder_for({"match": {}, "respond": respond}, save_transient=True)
    api.render(VOL, ACC_1, 10)
    saved = json.loads((tmp_path / f"{fixture_stem(VOL)}__429.json").read_text())
    assert saved["headers"] == {"content-type": "application/json", "retry-after": "1"}
    assert_clean(tmp_path)


@pytest.mark.parametrize(
    "respond",
    [
        {"status": 401, "json": {"message": f"bad key {KEY_1}", "echo": {KEY_1: [KEY_1]}}},
        {"status": 403, "headers": {"Content-Type": "text/plain"}, "text": f"key={KEY_1};"},
        {"status": 403, "text": "x" * 4090 + KEY_1},  # cut inside the key at 4096 bytes
    ],
)
def test_a_key_echoed_by_the_provider_never_reaches_a_fixture(
    recorder_for: Any, tmp_path: Path, respond: dict[str, Any]
) -> None:
    api = recorder_for({"match": {}, "respond": respond})
    attempt = api.render(VOL, ACC_1, 10)
    assert attempt.kind == "rejected"
    assert KEY_1 not in repr(attempt)
    assert len(list(tmp_path.iterdir())) == 1
    assert_clean(tmp_path)
    saved = (tmp_path / f"{fixture_stem(VOL)}__{respond['status']}.json").read_text()
    assert KEY_1[:4] not in saved  # not even the part of the key before the cut


def test_network_errors_and_timeouts_save_nothing(
    recorder_for: Any, stub: ChartImgStub, tmp_path: Path
) -> None:
    api = recorder_for(
        {"match": {}, "respond": {"closeConnection": True}},
        {"match": {}, "respond": {"delaySeconds": 1.0}},
    )
    assert api.render(VOL, ACC_1, 10).kind == "network_error"
    assert api.render(VOL, ACC_1, 0.3).kind == "timeout"
    assert list(tmp_path.iterdir()) == []


def test_record_without_fixture_or_account_calls_nothing(
    recorder_for: Any, stub: ChartImgStub, tmp_path: Path
) -> None:
    api = recorder_for()
    assert api.render(VOL, None, 10).kind == "fixture_missing"
    assert stub.state()["total"] == 0


def test_record_replays_an_existing_fixture_without_a_call(
    recorder_for: Any, stub: ChartImgStub, tmp_path: Path
) -> None:
    write_json(tmp_path / f"{fixture_stem(PSAR)}__500.json", {"status": 500})
    api = recorder_for()
    assert api.render(PSAR, ACC_1, 10).kind == "server_error"
    assert stub.state()["total"] == 0


def test_fixture_document_shapes() -> None:
    assert fixture_document(RawResponse(204, None, None, b""), KEY_1) == {"status": 204}
    assert fixture_document(RawResponse(400, "text/plain", None, b"\xffbad"), KEY_1) == {
        "status": 400,
        "headers": {"content-type": "text/plain"},
        "text": "\ufffdbad",
    }


def test_all_three_modes_implement_the_port(tmp_path: Path) -> None:
    """Checked by mypy (structural typing) and at run time: the engine takes any of them."""
    real = ChartImgHttp("http://127.0.0.1:9")
    raw_port: RawChartApi = real
    modes: list[ChartApi] = [
        real,
        FixtureChartApi(tmp_path),
        RecordingChartApi(raw_port, tmp_path),
    ]
    assert all(callable(mode.render) for mode in modes)
