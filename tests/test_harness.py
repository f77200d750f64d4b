"""Proofs that the harness components behave the way the worker relies on.

Each test drives the real client library (firestore, storage, google-genai, functions-framework)
against the local stand-in, so a regression in either side shows up here first.
"""

from __future__ import annotations

import base64
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx2
import pytest
import requests
from google import genai
from google.api_core import exceptions as gexc
from google.events.cloud.firestore import DocumentEventData
from google.genai import errors as genai_errors
from google.genai import types

from devstack import cloudevents
from devstack.gemini_stub import EXHAUSTED_REPLY, GeminiStub, Reply, error, ok
from devstack.services import FunctionServer, ServiceStartError, free_port, post_event
from tests.conftest import FAKE_GEMINI_API_KEY, PROJECT

# A 1x1 transparent PNG: small, but a real image for the inline-data part.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


# --------------------------------------------------------------------------------------
# Firestore emulator
# --------------------------------------------------------------------------------------


def test_firestore_enforces_last_update_time_precondition(firestore):
    """A stale `last_update_time` write option is rejected with FailedPrecondition.

    Observed: google.api_core.exceptions.FailedPrecondition (gRPC FAILED_PRECONDITION, HTTP 400),
    not Conflict/Aborted; the emulator enforces it exactly like production.
    """
    ref = firestore.collection("flow_runs").document("run-precondition")
    ref.set({"status": "RUNNING", "n": 0})
    stale = ref.get()
    ref.update({"n": 1})  # someone else wins the race

    with pytest.raises(gexc.FailedPrecondition):
        ref.update({"n": 2}, option=firestore.write_option(last_update_time=stale.update_time))
    assert ref.get().get("n") == 1

    fresh = ref.get()
    ref.update({"n": 3}, option=firestore.write_option(last_update_time=fresh.update_time))
    assert ref.get().get("n") == 3


def test_firestore_reset_deletes_all_documents(firestore, firestore_emulator):
    firestore.collection("flow_runs").document("a").set({"x": 1})
    firestore.collection("other").document("b").collection("sub").document("c").set({"y": 2})
    assert firestore.collection("flow_runs").document("a").get().exists

    firestore_emulator.reset()

    assert not firestore.collection("flow_runs").document("a").get().exists
    assert not firestore.document("other/b/sub/c").get().exists


# --------------------------------------------------------------------------------------
# fake-gcs-server
# --------------------------------------------------------------------------------------


def test_gcs_create_only_upload_conflicts(gcs):
    """`if_generation_match=0` is create-only: a second upload raises PreconditionFailed (412)."""
    bucket = gcs.create_bucket("artifacts")
    blob = bucket.blob("runs/r1/report.json")
    blob.upload_from_string(b'{"v": 1}', content_type="application/json", if_generation_match=0)

    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("runs/r1/report.json").upload_from_string(
            b'{"v": 2}', content_type="application/json", if_generation_match=0
        )
    assert bucket.blob("runs/r1/report.json").download_as_bytes() == b'{"v": 1}'


def test_gcs_ranged_read_returns_at_most_n_plus_one_bytes(gcs):
    data = bytes(range(256)) * 40  # 10 KiB, non-repeating within each 256-byte block
    bucket = gcs.create_bucket("inputs")
    bucket.blob("big.bin").upload_from_string(data)

    head = bucket.blob("big.bin").download_as_bytes(start=0, end=99)  # `end` is inclusive
    assert head == data[:100]

    middle = bucket.blob("big.bin").download_as_bytes(start=300, end=309)
    assert middle == data[300:310]

    small = bucket.blob("small.bin")
    small.upload_from_string(b"tiny")
    assert bucket.blob("small.bin").download_as_bytes(start=0, end=99) == b"tiny"


def test_gcs_reset_leaves_no_buckets_or_objects(gcs, fake_gcs):
    for name in ("b-one", "b-two"):
        bucket = gcs.create_bucket(name)
        bucket.blob("a/b/c.txt").upload_from_string(b"x")
        bucket.blob("with space & ünicode.txt").upload_from_string(b"y")
    assert len(list(gcs.list_buckets())) == 2

    fake_gcs.reset()

    assert list(gcs.list_buckets()) == []
    # Recreating a bucket with the same name starts empty.
    assert list(gcs.create_bucket("b-one").list_blobs()) == []


# --------------------------------------------------------------------------------------
# Gemini stub with the real google-genai SDK
# --------------------------------------------------------------------------------------


@pytest.fixture
def genai_client(gemini, monkeypatch):
    """A real SDK client aimed at the stub the way the worker is: via GOOGLE_GEMINI_BASE_URL."""
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    return genai.Client(
        api_key=FAKE_GEMINI_API_KEY,
        http_options=types.HttpOptions(
            timeout=1_000,  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string"}, "score": {"type": "number"}},
    "required": ["verdict"],
}


def _generate(client: genai.Client) -> types.GenerateContentResponse:
    return client.models.generate_content(
        model="gemini-2.0-flash",
        contents=[
            types.Part.from_text(text="Analyse this chart."),
            types.Part.from_bytes(data=PNG_1X1, mime_type="image/png"),
        ],
        config=types.GenerateContentConfig(
            system_instruction="You are a trading analyst.",
            response_mime_type="application/json",
            response_json_schema=SCHEMA,
        ),
    )


def test_gemini_stub_round_trip_with_real_sdk(gemini, genai_client):
    gemini.script(ok(['{"verdict": ', '"buy"}'], response_id="resp-42"))

    response = _generate(genai_client)

    assert response.text == '{"verdict": "buy"}'
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (287, 59)
    assert usage.total_token_count == 346
    assert [(d.modality, d.token_count) for d in usage.prompt_tokens_details] == [
        (types.MediaModality.TEXT, 29),
        (types.MediaModality.IMAGE, 258),
    ]
    assert response.model_version == "gemini-2.0-flash-001"
    assert response.response_id == "resp-42"

    [sent] = gemini.requests
    # google-genai 3.4 defaults to API version v1 for the Gemini Developer API.
    assert sent.path == "/v1/models/gemini-2.0-flash:generateContent"
    assert sent.model == "gemini-2.0-flash"
    assert sent.headers["x-goog-api-key"] == FAKE_GEMINI_API_KEY
    assert sent.body["systemInstruction"]["parts"] == [{"text": "You are a trading analyst."}]
    parts = sent.body["contents"][0]["parts"]
    assert parts[0] == {"text": "Analyse this chart."}
    inline = parts[1]["inlineData"]
    assert base64.b64decode(inline["data"]) == PNG_1X1
    # The SDK serialises this one key in snake_case; accept either spelling.
    assert inline.get("mimeType", inline.get("mime_type")) == "image/png"
    generation = sent.body["generationConfig"]
    assert generation["responseMimeType"] == "application/json"
    assert generation["responseJsonSchema"] == SCHEMA


def test_gemini_stub_429_raises_client_error(gemini, genai_client):
    gemini.script(error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for model"))
    with pytest.raises(genai_errors.ClientError) as caught:
        _generate(genai_client)
    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    assert "Quota exceeded" in (caught.value.message or "")
    assert len(gemini.requests) == 1  # attempts=1: no SDK retry


def test_gemini_stub_400_raises_client_error(gemini, genai_client):
    gemini.script(error(400, "INVALID_ARGUMENT", "Invalid JSON schema"))
    with pytest.raises(genai_errors.ClientError) as caught:
        _generate(genai_client)
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")


def test_gemini_stub_503_raises_server_error(gemini, genai_client):
    gemini.script(error(503, "UNAVAILABLE", "The model is overloaded"))
    with pytest.raises(genai_errors.ServerError) as caught:
        _generate(genai_client)
    assert caught.value.code == 503
    assert caught.value.status == "UNAVAILABLE"


def test_gemini_stub_delay_beyond_timeout_raises_httpx2_read_timeout(gemini, genai_client):
    """A reply slower than HttpOptions.timeout surfaces as `httpx2.ReadTimeout`, unwrapped.

    google-genai 3.4 uses the `httpx2` package (not `httpx`); ReadTimeout subclasses
    httpx2.TimeoutException -> TransportError -> RequestError -> HTTPError. It is NOT a
    google.genai.errors.APIError.
    """
    gemini.script(ok("too late", delay=3.0))
    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        _generate(genai_client)
    assert time.monotonic() - started < 2.5


def test_gemini_stub_exhausted_script_and_default(gemini, genai_client):
    with pytest.raises(genai_errors.ServerError) as caught:
        _generate(genai_client)
    assert caught.value.code == 500
    assert "script exhausted" in (caught.value.message or "")

    gemini.set_default(ok("fallback"))
    assert _generate(genai_client).text == "fallback"
    gemini.reset()
    assert gemini.requests == []
    with pytest.raises(genai_errors.ServerError):
        _generate(genai_client)


def test_gemini_stub_slow_reply_does_not_block_others(gemini):
    gemini.script(Reply(status=200, body={"n": 1}, delay=1.0), Reply(status=200, body={"n": 2}))
    url = gemini.base_url + "/v1/models/m:generateContent"
    with ThreadPoolExecutor(max_workers=2) as pool:
        slow = pool.submit(requests.post, url, json={"i": 1}, timeout=10)
        time.sleep(0.2)  # make sure the slow one takes the first scripted reply
        started = time.monotonic()
        fast = requests.post(url, json={"i": 2}, timeout=10)
        fast_elapsed = time.monotonic() - started
        assert fast.json() == {"n": 2}
        assert fast_elapsed < 0.5
        assert slow.result().json() == {"n": 1}
    assert [r.body for r in gemini.requests] == [{"i": 1}, {"i": 2}]


def test_gemini_stub_starts_and_stops_independently():
    with GeminiStub() as stub:
        stub.script(ok("hi"))
        resp = requests.post(stub.base_url + "/v1/x", json={}, timeout=5)
        assert resp.status_code == 200
        assert requests.post(stub.base_url + "/v1/x", json={}, timeout=5).status_code == 500
        assert EXHAUSTED_REPLY.status == 500
        port = stub.port
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{port}/v1/x", json={}, timeout=2)


# --------------------------------------------------------------------------------------
# CloudEvents
# --------------------------------------------------------------------------------------

DOC = {
    "status": "RUNNING",
    "attempt": 2,
    "ratio": 0.25,
    "enabled": False,
    "missing": None,
    "zero": 0,
    "empty": "",
    "created": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    "steps": {"s1": {"kind": "LLM_REPORT", "deps": ["s0"], "inputs": {"n": [1, 2.5, True]}}},
    "tags": [],
}


def test_cloudevent_headers_match_eventarc_binary_mode():
    headers, _ = cloudevents.firestore_update_event(
        project=PROJECT, run_id="run-1", document=DOC, event_id="evt-1"
    )
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == "evt-1"
    assert headers["ce-type"] == "google.cloud.firestore.document.v1.updated"
    source = "//firestore.googleapis.com/projects/demo-tda/databases/(default)"
    assert headers["ce-source"] == source
    assert headers["ce-subject"] == "documents/flow_runs/run-1"
    assert headers["ce-document"] == "flow_runs/run-1"
    assert headers["ce-database"] == "(default)"
    assert headers["ce-namespace"] == "(default)"
    assert headers["Content-Type"] == "application/protobuf"
    assert datetime.fromisoformat(headers["ce-time"]).tzinfo is not None

    other, _ = cloudevents.firestore_update_event(
        project=PROJECT, run_id="run-1", document=DOC, subject="documents/bogus"
    )
    assert other["ce-subject"] == "documents/bogus"
    assert other["ce-id"] != headers["ce-id"]


def test_cloudevent_body_round_trips_through_document_event_data():
    _, body = cloudevents.firestore_update_event(
        project=PROJECT,
        run_id="run-1",
        document=DOC,
        old_document={"status": "PENDING"},
        update_mask=["status"],
    )
    assert cloudevents.decode_document_fields(body) == DOC

    event = DocumentEventData.deserialize(body)
    assert event.value.name == "projects/demo-tda/databases/(default)/documents/flow_runs/run-1"
    assert event.value.update_time > event.value.create_time
    assert cloudevents.from_fields(event.old_value.fields) == {"status": "PENDING"}
    assert list(event.update_mask.field_paths) == ["status"]
    assert event.old_value.update_time < event.value.update_time


def test_cloudevent_without_document_leaves_value_unset():
    _, body = cloudevents.firestore_update_event(project=PROJECT, run_id="r", document=None)
    event = DocumentEventData.deserialize(body)
    assert "value" not in event
    assert cloudevents.decode_document_fields(body) == {}


# --------------------------------------------------------------------------------------
# functions-framework server
# --------------------------------------------------------------------------------------

PROBE_SOURCE = textwrap.dedent(
    """
    import json
    import os
    import time

    import functions_framework
    from google.events.cloud.firestore import DocumentEventData


    @functions_framework.cloud_event
    def probe(event):
        data = event.get_data()
        doc = DocumentEventData.deserialize(data)
        if "sleep" in doc.value.fields:
            time.sleep(doc.value.fields["sleep"].double_value)
        print("plain text line, not json")
        print(json.dumps({
            "probe": "ok",
            "id": event["id"],
            "subject": event["subject"],
            "document": event.get("document"),
            "data_type": type(data).__name__,
            "status": doc.value.fields["status"].string_value,
            "env": os.environ.get("PROBE_ENV"),
        }))
    """
)


@pytest.fixture(scope="module")
def probe_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "probe_main.py"
    path.write_text(PROBE_SOURCE)
    return path


@pytest.fixture(scope="module")
def probe_server(probe_source, tmp_path_factory):
    server = FunctionServer(
        target="probe",
        source=probe_source,
        env={"PROBE_ENV": "from-env"},
        log_dir=tmp_path_factory.mktemp("probe-logs"),
    ).start()
    yield server
    server.stop()


def _event(run_id: str, event_id: str, sleep: float | None = None) -> tuple[dict[str, str], bytes]:
    document: dict[str, object] = {"status": "RUNNING"}
    if sleep is not None:
        document["sleep"] = sleep
    return cloudevents.firestore_update_event(
        project=PROJECT, run_id=run_id, document=document, event_id=event_id
    )


def test_function_server_delivers_cloudevent_and_captures_json_logs(probe_server):
    first = probe_server.mark()
    headers, body = _event("run-a", "evt-a")
    assert post_event(probe_server.url, headers, body) == 200

    [line] = probe_server.log_json_lines(since=first)
    assert line == {
        "probe": "ok",
        "id": "evt-a",
        "subject": "documents/flow_runs/run-a",
        "document": "flow_runs/run-a",
        "data_type": "bytes",  # binary-mode protobuf reaches the function as raw bytes
        "status": "RUNNING",
        "env": "from-env",
    }
    assert "plain text line, not json" in probe_server.log_text(since=first)

    second = probe_server.mark()
    headers, body = _event("run-b", "evt-b")
    assert post_event(probe_server.url, headers, body) == 200
    assert [r["id"] for r in probe_server.log_json_lines(since=second)] == ["evt-b"]
    assert [r["id"] for r in probe_server.log_json_lines()] == ["evt-a", "evt-b"]


def test_function_server_handles_requests_concurrently(probe_server):
    """Each probe call sleeps 1 s; four in parallel finish well under 4 s (gthread worker)."""
    mark = probe_server.mark()
    events = [_event(f"run-{i}", f"evt-c{i}", sleep=1.0) for i in range(4)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda ev: post_event(probe_server.url, *ev), events))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 4
    assert elapsed < 2.5
    assert sorted(r["id"] for r in probe_server.log_json_lines(since=mark)) == [
        f"evt-c{i}" for i in range(4)
    ]


def test_function_server_rejects_bad_specversion_before_the_function(probe_server):
    """An unknown specversion is answered by functions-framework itself with 415."""
    mark = probe_server.mark()
    headers, body = _event("run-x", "evt-x")
    headers["ce-specversion"] = "0.9"
    assert post_event(probe_server.url, headers, body) == 415
    assert probe_server.log_json_lines(since=mark) == []


@pytest.mark.parametrize("header", ["ce-specversion", "ce-id", "ce-source", "ce-type"])
def test_function_server_missing_required_header_never_reaches_function(probe_server, header):
    """Without all four of ce-specversion/id/source/type the request is not binary mode: the
    framework JSON-parses the protobuf body as a structured event and fails with 500 (body not
    UTF-8) or 4xx, depending on the bytes. Either way the function is not called.
    """
    mark = probe_server.mark()
    headers, body = _event("run-x", "evt-x")
    del headers[header]
    assert post_event(probe_server.url, headers, body) >= 400
    assert probe_server.log_json_lines(since=mark) == []


def test_function_server_early_exit_reports_log_tail(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom at import')\n")
    server = FunctionServer(target="probe", source=broken, log_dir=tmp_path, port=free_port())
    with pytest.raises(ServiceStartError, match="boom at import"):
        server.start()
    assert not server.running


def test_function_server_factory_caches_per_env(function_server_factory, probe_source):
    a = function_server_factory(target="probe", source=probe_source)
    assert function_server_factory(target="probe", source=probe_source) is a
    b = function_server_factory({"PROBE_ENV": "other"}, target="probe", source=probe_source)
    assert b is not a
    assert b.env["PROBE_ENV"] == "other"
    assert a.env["FIRESTORE_EMULATOR_HOST"].startswith("127.0.0.1:")
    headers, body = _event("run-f", "evt-f")
    mark = b.mark()
    assert post_event(b.url, headers, body) == 200
    assert [r["env"] for r in b.log_json_lines(since=mark)] == ["other"]
