"""The CHART_EXPORT rules one by one, in memory (§3-§12): inputs, templates, accounts and
reservations, retries and bounds, reuse, artifacts, the step code, and the key gate.

Each test builds the worker like `test_lifecycle` does and asserts what a rule promises; waits
are recorded by the fake `sleep`, so backoffs and cool-downs cost no time and can be checked.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.memory import MemoryBlobStore, MemoryDocumentStore
from engine.config import ConfigError
from states.chart_export.accounts import AccountBook, candidates, start_index
from states.chart_export.chart_api import Account, ChartAttempt, ChartRequest
from states.chart_export.config import ChartConfig
from states.chart_export.phases import Charts, RequestError, RequestResult, StepInputs
from states.chart_export.shortfall import step_failure
from tests.chart_export.test_lifecycle import (
    KEYS,
    MA,
    MACD,
    MANIFEST,
    PSAR,
    RSI,
    RUN_ID,
    STEP,
    Setup,
    environ,
    flow_run,
    png_uri,
    run,
    templates,
)
from tests.fakes import ChartBlobs, DictTemplates, FaultyUsage, ScriptedChartApi

PNG = ChartAttempt("ok", 200, png=b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)


def attempt(kind: Any, status: int | None = None, **extra: Any) -> ChartAttempt:
    return ChartAttempt(kind, status, **extra)


def store(**kwargs: Any) -> MemoryDocumentStore:
    return MemoryDocumentStore({f"flow_runs/{RUN_ID}": flow_run(**kwargs)})


def usage(**kwargs: Any) -> FaultyUsage:
    return FaultyUsage(44, 3000, **kwargs)


# --- §3 step inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"symbol": "BINANCE:BTCUSDT"}, "scope.symbol"),
        ({"symbol": ""}, "scope.symbol"),
        ({"timeframe": "1H"}, "timeframe"),
        ({"timeframe": "1mo"}, "timeframe"),
        ({"timeframe": "1w"}, "timeframe"),  # valid, but the stepId says charts:1M:
        ({"requests": []}, "inputs.requests"),
        ({"requests": [{"chartTemplateId": MA}] * 2}, "inputs.requests[1].chartTemplateId"),
        ({"requests": [{"chartTemplateId": MA, "width": 1}]}, "inputs.requests[0]"),
        ({"requests": [{"chartTemplateId": "price_v1"}]}, "inputs.requests[0].chartTemplateId"),
        ({"requests": [{"chartTemplateId": MA}] * 11}, "inputs.requests"),
        ({"minImages": None}, "inputs.minImages"),
        ({"minImages": True}, "inputs.minImages"),
        ({"minImages": 3}, "inputs.minImages"),
        ({"minImages": -1}, "inputs.minImages"),
    ],
)
def test_the_first_invalid_input_fails_the_step_before_any_template_read(change, field):
    doc = flow_run()
    step = doc["steps"][STEP]
    if "symbol" in change:
        doc["scope"]["symbol"] = change["symbol"]
    if "timeframe" in change:
        step["timeframe"] = change["timeframe"]
    if "requests" in change:
        step["inputs"]["requests"] = change["requests"]
    if "minImages" in change:
        if change["minImages"] is None:
            del step["inputs"]["minImages"]
        else:
            step["inputs"]["minImages"] = change["minImages"]
    source = DictTemplates(templates())
    result = run(store=MemoryDocumentStore({f"flow_runs/{RUN_ID}": doc}), templates=source)
    error = result.step["error"]
    assert (error["code"], error["details"]) == ("INVALID_STEP_INPUTS", {"field": field})
    assert source.reads == [] and result.api.calls == []
    assert set(result.execution) == {"timing", "reused", "chartImg"}  # no counts after inputs


def test_min_images_zero_is_allowed_and_ohlcv_uri_and_unknown_keys_are_ignored():
    doc = flow_run(min_images=0)
    doc["steps"][STEP]["inputs"].update(ohlcv_gcs_uri="gs://b/o.json", note="x")
    result = run(
        store=MemoryDocumentStore({f"flow_runs/{RUN_ID}": doc}),
        api=ScriptedChartApi({MA: [attempt("rejected", 422)], RSI: [attempt("rejected", 422)]}),
    )
    assert result.step["status"] == "SUCCEEDED"
    assert result.manifest()["items"] == [] and len(result.manifest()["failures"]) == 2


def test_a_message_quotes_at_most_64_characters_of_the_value():
    result = run(store=store(timeframe="x" * 300))
    assert "x" * 64 not in result.step["error"]["message"]


# --- §4, §5 templates ----------------------------------------------------------------------------


def broken(**change: Any) -> dict[str, Any]:
    doc: dict[str, Any] = templates()[MA]
    doc.update(change)
    return doc


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (broken(chartImgSymbolTemplate="BINANCE:BTCUSDT"), "symbol_placeholder"),
        (broken(chartImgSymbolTemplate="X:{symbol}{symbol}"), "symbol_placeholder"),
        (broken(description=""), "schema"),
        (broken(extra=1), "schema"),
        (broken(id=RSI), "id_mismatch"),
        (broken(request={"width": 1200, "height": 600}), "resolution"),
        (broken(request={"studies": [{"name": f"s{i}"} for i in range(4)]}), "parameter_limit"),
        (broken(chartImgSymbolTemplate="binance:{symbol}"), "schema"),
    ],
)
def test_each_template_check_names_its_reason_and_touches_no_quota(document, reason):
    quota = usage()
    result = run(
        env=environ(CHART_IMG_PLAN="BASIC"),
        templates=DictTemplates({**templates(), MA: document}),
        usage=quota,
        store=store(requests=(MA,), min_images=1),
    )
    assert result.step["error"]["code"] == "CHART_TEMPLATE_INVALID"
    assert result.events("chart_template_invalid")[0]["reason"] == reason
    assert quota.reservations == [] and result.api.calls == []


def test_the_symbol_result_is_checked_per_step_and_the_symbol_is_substituted():
    doc = flow_run(requests=(MA,), min_images=1)
    doc["scope"]["symbol"] = "btc.usdt"
    symbolled = broken(chartImgSymbolTemplate="BYBIT:{symbol}.P")
    api = ScriptedChartApi()
    result = run(
        store=MemoryDocumentStore({f"flow_runs/{RUN_ID}": doc}),
        templates=DictTemplates({MA: symbolled}),
        api=api,
    )
    assert result.step["status"] == "SUCCEEDED"
    assert result.requests[0]["chartImgSymbol"] == "BYBIT:btc.usdt.P"
    doc["scope"]["symbol"] = "_BTC"  # a base symbol must start with a letter or digit
    lower = broken(chartImgSymbolTemplate="BINANCE:{symbol}")
    result = run(store=store(requests=(MA,), min_images=1), templates=DictTemplates({MA: lower}))
    assert result.step["status"] == "SUCCEEDED"


def test_valid_templates_are_cached_per_instance_missing_and_invalid_never():
    from states.chart_export.ports import TemplateCache

    cache = TemplateCache()  # one instance: the same cache across its invocations
    source = DictTemplates({MA: templates()[MA], RSI: broken(id="wrong")})
    for _ in range(3):
        run(
            Setup(
                templates=source,
                store=store(requests=(MA, RSI, PSAR), min_images=1),
                ports={"template_cache": cache},
            )
        )
    assert source.reads.count(MA) == 1
    assert source.reads.count(RSI) == source.reads.count(PSAR) == 3


def test_a_template_read_failure_fails_that_request_firestore_unavailable():
    result = run(
        templates=DictTemplates(templates(), failing=frozenset({RSI})),
        store=store(requests=(MA, RSI), min_images=1),
    )
    assert result.step["status"] == "SUCCEEDED"
    failure = result.manifest()["failures"][0]
    assert failure["error"]["code"] == "FIRESTORE_UNAVAILABLE"


def test_the_body_is_the_template_request_with_symbol_interval_and_timezone_only():
    seen: list[ChartRequest] = []

    class Recording(ScriptedChartApi):
        def render(self, request, account, timeout_s):
            seen.append(request)
            return super().render(request, account, timeout_s)

    run(
        api=Recording(),
        store=store(requests=(MA,), min_images=1),
        env=environ(CHARTS_DEFAULT_TIMEZONE="Europe/Berlin"),
    )
    expected = dict(templates()[MA]["request"])
    expected.update(symbol="BINANCE:BTCUSDT", interval="1M", timezone="Europe/Berlin")
    assert dict(seen[0].body) == expected


# --- §7 accounts and reservations ----------------------------------------------------------------


def test_the_candidate_order_starts_at_the_hash_and_attempt_k_starts_k_further():
    accounts = [Account(f"a{i}", f"k{i}") for i in range(3)]
    start = start_index(RUN_ID, STEP, MA, 3)
    first = candidates(accounts, start, 0, (), ())
    assert [a.id for a in first] == [f"a{(start + i) % 3}" for i in range(3)]
    second = candidates(accounts, start, 1, (), ())
    assert second[0] == first[1]
    skipped = candidates(accounts, start, 0, {first[0].id}, {first[1].id})
    assert [a.id for a in skipped] == [first[2].id, first[1].id]  # cool-down last
    assert start_index(RUN_ID, "charts:1M:ctpl_price_ma1226_vol_v1", MA, 2) == 1  # README


def test_limit_exceeded_marks_the_account_and_moves_on_without_delay():
    first = start_index(RUN_ID, STEP, MA, 2)
    first_id = list(KEYS)[first]
    api = ScriptedChartApi(
        {MA: [attempt("limit_exceeded", 429, provider_message="Limit Exceeded")]}
    )
    quota = usage()
    result = run(api=api, usage=quota, store=store(requests=(MA,), min_images=1))
    assert result.step["status"] == "SUCCEEDED"
    assert [c[1] for c in api.calls][:2] == [first_id, list(KEYS)[1 - first]]
    marked = quota.document(first_id) or {}
    assert marked["usageToday"] == 44 and "exhaustedAt" in marked
    assert result.sleeps == [] or max(result.sleeps) < 0.05  # spacing of ULTRA at most


def test_a_failed_exhaustion_write_is_logged_and_the_account_stays_exhausted():
    api = ScriptedChartApi({MA: [attempt("limit_exceeded", 429)]})
    quota = usage(exhaust_fails=True)
    result = run(
        api=api, usage=quota, store=store(requests=(MA, RSI), min_images=1), env=environ(1)
    )
    assert result.events("chart_img_exhaustion_not_recorded")
    assert result.step["error"]["code"] == "CHART_API_LIMIT_EXCEEDED"
    # RSI never got to acc-1: the instance knew it was exhausted
    assert [c for c in api.calls if c[0] == RSI] == []


def test_accounts_at_their_counter_limit_send_nothing_and_log_all_exhausted_once():
    day = "2025-12-15T00:00:00Z"
    docs = {acc: {"usageToday": 44, "windowStart": day} for acc in KEYS}
    quota = FaultyUsage(44, 3000, docs)
    result = run(
        usage=quota,
        env=environ(WORKER_TEST_NOW="2025-12-15T10:26:00Z"),
        store=store(requests=(MA, RSI), min_images=1),
    )
    assert result.api.calls == []
    assert len(result.events("chart_img_accounts_all_exhausted")) == 1
    failures = result.step["error"]["details"]["failures"]
    assert [f["code"] for f in failures] == ["CHART_API_LIMIT_EXCEEDED"] * 2


def test_contention_and_an_unreachable_usage_store_have_their_own_codes():
    contended = run(
        usage=usage(contended=frozenset(KEYS)), store=store(requests=(MA,), min_images=1)
    )
    assert contended.step["error"]["code"] == "CHART_API_FAILED"
    assert contended.events("chart_img_reservation_conflict")
    down = run(usage=usage(unavailable=frozenset(KEYS)), store=store(requests=(MA,), min_images=1))
    assert down.step["error"]["code"] == "FIRESTORE_UNAVAILABLE"
    assert contended.api.calls == down.api.calls == []


def test_mock_mode_reserves_nothing_and_names_no_account():
    quota = usage()
    result = run(usage=quota, env=environ(CHARTS_API_MODE="mock"), api=ScriptedChartApi())
    assert result.step["status"] == "SUCCEEDED" and quota.reservations == []
    assert {a["accountId"] for r in result.requests for a in r["attempts"]} == {None}


# --- §8 retries, bounds, time --------------------------------------------------------------------


def test_rate_limited_with_retry_after_cools_the_account_and_keeps_the_quota():
    api = ScriptedChartApi({MA: [attempt("rate_limited", 429, retry_after_s=2.0)]})
    quota = usage()
    result = run(api=api, usage=quota, env=environ(1), store=store(requests=(MA,), min_images=1))
    assert result.step["status"] == "SUCCEEDED"
    assert quota.reservations == ["acc-1", "acc-1"]
    assert max(result.sleeps) >= 1.9  # the cool-down is a lower bound for the retry
    assert "exhaustedAt" not in (quota.document("acc-1") or {})


def test_rate_limited_with_another_account_moves_on_at_once():
    first = list(KEYS)[start_index(RUN_ID, STEP, MA, 2)]
    api = ScriptedChartApi({MA: [attempt("rate_limited", 429, retry_after_s=30.0)]})
    result = run(api=api, store=store(requests=(MA,), min_images=1))
    assert result.step["status"] == "SUCCEEDED"
    assert api.calls[0][1] == first and api.calls[1][1] != first
    assert all(s < 1 for s in result.sleeps)


def test_a_retry_after_above_the_maximum_takes_the_account_out_of_the_invocation():
    api = ScriptedChartApi({MA: [attempt("rate_limited", 429, retry_after_s=3600.0)] * 3})
    result = run(api=api, env=environ(1), store=store(requests=(MA,), min_images=1))
    assert len(api.calls) == 1 and result.step["error"]["code"] == "CHART_API_FAILED"


def test_server_errors_back_off_exponentially_within_the_per_request_bound():
    api = ScriptedChartApi({MA: [attempt("server_error", 503)] * 5})
    result = run(
        api=api,
        env=environ(1, CHART_IMG_BACKOFF_BASE_SECONDS="1", CHART_IMG_BACKOFF_MAX_SECONDS="20"),
        store=store(requests=(MA,), min_images=1),
    )
    assert len(api.calls) == 3  # CHART_IMG_MAX_ATTEMPTS_PER_REQUEST
    backoffs = [s for s in result.sleeps if s >= 0.5]
    assert len(backoffs) == 2 and 0.5 <= backoffs[0] <= 1 and 1 <= backoffs[1] <= 2
    assert result.step["error"]["message"].endswith("http 503")


@pytest.mark.parametrize(
    ("answer", "code", "reason"),
    [
        (attempt("rejected", 422, provider_message="Invalid Interval"), "CHART_API_REJECTED", None),
        (attempt("invalid_image", 200, reason="not_png"), "CHART_API_REJECTED", "not_png"),
        (attempt("fixture_missing"), "CHART_API_MOCK_MISSING", None),
    ],
)
def test_answers_that_are_never_retried(answer, code, reason):
    api = ScriptedChartApi({RSI: [answer]})
    result = run(api=api, store=store(requests=(MA, RSI), min_images=1))
    assert [c[0] for c in api.calls].count(RSI) == 1
    (failure,) = result.manifest()["failures"]
    assert failure["error"]["code"] == code
    assert failure["error"]["details"].get("reason") == reason
    assert failure["error"]["details"]["attempts"] == 1


def test_a_401_is_logged_as_an_account_problem():
    api = ScriptedChartApi({MA: [attempt("rejected", 401)]})
    result = run(api=api, store=store(requests=(MA,), min_images=1))
    assert result.events("chart_img_account_problem")


def test_the_step_bound_refuses_retries_but_never_a_first_attempt():
    failing = [attempt("server_error", 500)] * 5
    api = ScriptedChartApi({MA: failing, RSI: list(failing), MACD: list(failing)})
    run(
        api=api,
        env=environ(CHART_IMG_MAX_ATTEMPTS_PER_STEP="4"),
        store=store(requests=(MA, RSI, MACD), min_images=1),
    )
    assert {c[0] for c in api.calls} == {MA, RSI, MACD}  # every request got its first attempt
    assert len(api.calls) == 4


def test_no_time_for_an_attempt_fails_the_request_time_budget_exceeded():
    quota = usage()
    result = run(
        usage=quota,
        env=environ(
            INVOCATION_TIMEOUT_SECONDS="40",
            FINALIZE_BUDGET_SECONDS="35",
            STALE_STEP_LEASE_SECONDS="160",
        ),
        store=store(requests=(MA,), min_images=1),
    )
    assert result.step["error"]["code"] == "TIME_BUDGET_EXCEEDED"
    assert quota.reservations == [] and result.api.calls == []


# --- §9 concurrency ------------------------------------------------------------------------------


class Slow(ScriptedChartApi):
    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0
        self.guard = threading.Lock()

    def render(self, request, account, timeout_s):
        with self.guard:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(0.05 if request.chart_template_id == MA else 0.01)
        with self.guard:
            self.in_flight -= 1
        return super().render(request, account, timeout_s)


def test_requests_run_concurrently_within_the_bound_and_results_keep_request_order():
    api = Slow()
    ids = (MA, RSI, MACD, PSAR, "ctpl_price_vpvr_obv_v1")
    result = run(
        api=api, env=environ(CHART_RENDER_CONCURRENCY="2"), store=store(requests=ids, min_images=5)
    )
    assert result.step["status"] == "SUCCEEDED"
    assert api.peak == 2
    assert [r["chartTemplateId"] for r in result.requests] == list(ids)
    assert [i["chartTemplateId"] for i in result.manifest()["items"]] == list(ids)


def test_per_account_attempt_starts_are_spaced_one_over_rps():
    clock = [0.0]
    book = AccountBook(monotonic=lambda: clock[0])
    assert [book.claim(["acc-1"], 0.5) for _ in range(3)] == [
        ("acc-1", 0.0),
        ("acc-1", 0.5),
        ("acc-1", 1.0),
    ]
    # a free account is preferred to one whose next slot is later, whatever the order
    assert book.claim(["acc-1", "acc-2"], 0.5) == ("acc-2", 0.0)
    assert book.claim(["acc-2", "acc-1"], 0.5) == ("acc-2", 0.5)  # both busy: soonest first
    clock[0] = 5.0
    assert book.claim(["acc-1", "acc-2"], 0.5) == ("acc-1", 0.0)


def test_concurrent_requests_spread_over_free_accounts():
    four = [{"id": f"acc-{i}", "apiKey": f"test-only-key-{i}"} for i in range(4)]
    env = environ(CHART_IMG_PLAN="BASIC", CHART_IMG_ACCOUNTS_JSON=json.dumps(four))
    api = Slow()
    result = run(api=api, env=env, store=store(requests=(MA, RSI, MACD, PSAR), min_images=4))
    assert result.step["status"] == "SUCCEEDED"
    assert all(s < 0.5 for s in result.sleeps)  # no request waited for a busy account's slot
    assert sorted(c[1] or "" for c in api.calls) == [a["id"] for a in four]
    two = run(
        api=Slow(),
        env=environ(CHART_IMG_PLAN="BASIC"),
        store=store(requests=(MA, RSI, MACD, PSAR), min_images=4),
    )
    assert sum(s > 0.5 for s in two.sleeps) == 2  # two accounts: two requests wait a slot


# --- §10 artifacts and §12 reuse -----------------------------------------------------------------


def test_an_existing_png_is_reused_without_reservation_or_call():
    created = datetime(2025, 12, 14, 9, 0, tzinfo=UTC)
    blobs = MemoryBlobStore()
    blobs.objects[png_uri(MA)] = (b"\x89PNG old", created)
    quota = usage()
    result = run(blobs=blobs, usage=quota)
    assert result.requests[0]["outcome"] == "reused_object"
    assert [c[0] for c in result.api.calls] == [RSI] and len(quota.reservations) == 1
    assert result.manifest()["items"][0]["generatedAt"] == "2025-12-14T09:00:00.000000Z"
    assert blobs.objects[png_uri(MA)][0] == b"\x89PNG old"  # never overwritten


def test_a_failed_png_lookup_counts_as_absent():
    result = run(blobs=ChartBlobs(created_fails=True))
    assert result.step["status"] == "SUCCEEDED" and result.events("chart_png_lookup_failed")


def test_a_png_write_is_tried_three_times():
    blobs = ChartBlobs(create_fails=f"{MA}.png", times=2)
    result = run(blobs=blobs)
    assert result.step["status"] == "SUCCEEDED"
    assert blobs.creates.count(png_uri(MA)) == 3
    assert [s for s in result.sleeps if s >= 0.5] == [0.5, 1.0]


def test_failed_steps_keep_their_pngs_and_write_no_manifest():
    api = ScriptedChartApi({RSI: [attempt("rejected", 400)]})
    result = run(api=api)
    assert result.step["status"] == "FAILED"
    assert set(result.blobs.objects) == {png_uri(MA)}
    assert "gcs_uri" not in result.step["outputs"]


def test_an_adopted_manifest_must_reach_its_own_min_images():
    from tests.chart_export.test_lifecycle import manifest, running

    result = run(
        store=MemoryDocumentStore({f"flow_runs/{RUN_ID}": running()}),
        blobs=MemoryBlobStore({MANIFEST: manifest(items=1, min_images=2)}),
    )
    assert result.step["error"]["code"] == "MANIFEST_INVALID"


def test_an_adoption_records_the_manifest_counts_and_no_attempt():
    from tests.chart_export.test_lifecycle import manifest, running

    result = run(
        store=MemoryDocumentStore({f"flow_runs/{RUN_ID}": running()}),
        blobs=MemoryBlobStore({MANIFEST: manifest()}),
    )
    execution = result.execution
    assert execution["reused"] is True
    assert (execution["minImages"], execution["itemsCount"], execution["failuresCount"]) == (
        2,
        2,
        0,
    )
    assert execution["chartImg"] == {
        "mode": "real",
        "attemptsTotal": 0,
        "accountsUsed": [],
        "requests": [],
    }
    assert execution["timing"]["startedAt"] == "2025-12-15T10:00:00.000001Z"


# --- §11 the step code ---------------------------------------------------------------------------


def charts(min_images: int, *outcomes: tuple[str, str | None]) -> Charts:
    inputs = StepInputs(
        "BTCUSDT", "1M", "1M", "1mon", tuple(f"t{i}" for i in range(len(outcomes))), min_images
    )
    results = []
    for i, (outcome, error_code) in enumerate(outcomes):
        error = RequestError(error_code, "m", http_status=504) if error_code else None
        results.append(RequestResult(f"t{i}", outcome, "gs://b/x", error=error))  # type: ignore[arg-type]
    return Charts(inputs, tuple(results))


@pytest.mark.parametrize(
    ("min_images", "outcomes", "code"),
    [
        (2, [("rendered", None), ("failed", "CHART_API_FAILED")], "CHART_API_FAILED"),
        (
            2,
            [("failed", "CHART_API_REJECTED"), ("failed", "CHART_API_FAILED")],
            "CHART_API_REJECTED",
        ),
        (1, [("failed", "CHART_API_REJECTED"), ("failed", "CHART_API_FAILED")], "CHART_API_FAILED"),
        (
            3,
            [
                ("failed", "GCS_WRITE_FAILED"),
                ("failed", "CHART_API_LIMIT_EXCEEDED"),
                ("failed", "CHART_TEMPLATE_NOT_FOUND"),
            ],
            "CHART_TEMPLATE_NOT_FOUND",
        ),
        (
            2,
            [
                ("failed", "GCS_WRITE_FAILED"),
                ("failed", "CHART_API_LIMIT_EXCEEDED"),
                ("failed", "CHART_TEMPLATE_NOT_FOUND"),
            ],
            "GCS_WRITE_FAILED",
        ),
    ],
)
def test_the_step_code_follows_the_shortfall_rule(min_images, outcomes, code):
    failure = step_failure(charts(min_images, *outcomes))
    assert failure.code == code
    assert failure.details is not None and failure.details["minImages"] == min_images
    assert failure.message.startswith(
        f"images {sum(o == 'rendered' for o, _ in outcomes)}/{min_images}"
    )


# --- §15 keys stay out of everything -------------------------------------------------------------


def test_a_provider_message_echoing_another_key_is_scrubbed_before_storage():
    other = KEYS["acc-2"]
    api = ScriptedChartApi({RSI: [attempt("rejected", 400, provider_message=f"bad key {other}")]})
    result = run(api=api, store=store(requests=(MA, RSI), min_images=1))
    assert other not in json.dumps(result.manifest())
    assert other not in result.log
    assert other not in json.dumps(result.store.writes)


# --- §16 configuration ---------------------------------------------------------------------------


BASE = {"ARTIFACTS_BUCKET": "b", "CHART_IMG_ACCOUNTS_JSON": '[{"id": "a", "apiKey": "sekrit"}]'}
ONE = '[{"id": "a", "apiKey": "sekrit-1"}, {"id": "a", "apiKey": "sekrit-2"}]'


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CHART_IMG_ACCOUNTS_JSON": "not json sekrit"}, "CHART_IMG_ACCOUNTS_JSON"),
        ({"CHART_IMG_ACCOUNTS_JSON": "[]"}, "CHART_IMG_ACCOUNTS_JSON"),
        ({"CHART_IMG_ACCOUNTS_JSON": ONE}, "CHART_IMG_ACCOUNTS_JSON[1].id"),
        (
            {"CHART_IMG_ACCOUNTS_JSON": '[{"id": "a", "apiKey": "sek rit"}]'},
            "CHART_IMG_ACCOUNTS_JSON[0].apiKey",
        ),
        (
            {"CHART_IMG_ACCOUNTS_JSON": '[{"id": "a", "apiKey": "sekrit", "dailyLimit": 0}]'},
            "CHART_IMG_ACCOUNTS_JSON[0].dailyLimit",
        ),
        ({"CHART_IMG_ACCOUNTS_JSON": ""}, "CHART_IMG_ACCOUNTS_JSON"),
        ({"CHARTS_API_MODE": "record", "ENV": "production"}, "CHARTS_API_MODE"),
        ({"CHART_IMG_BASE_URL": "http://chart-img.example"}, "CHART_IMG_BASE_URL"),
        ({"CHART_IMG_BASE_URL": "http://127.0.0.1:9", "ENV": "prod"}, "CHART_IMG_BASE_URL"),
        ({"CHART_RENDER_CONCURRENCY": "5"}, "CHART_RENDER_CONCURRENCY"),
        ({"CHART_IMG_MAX_PNG_BYTES": "300000"}, "CHART_IMG_MAX_PNG_BYTES"),
        ({"CHART_IMG_BACKOFF_BASE_SECONDS": "30"}, "CHART_IMG_BACKOFF_BASE_SECONDS"),
        ({"CHARTS_DEFAULT_TIMEZONE": "Mars/Olympus"}, "CHARTS_DEFAULT_TIMEZONE"),
        ({"CHART_TEMPLATES_COLLECTION": "a/b"}, "CHART_TEMPLATES_COLLECTION"),
        ({"STALE_STEP_LEASE_SECONDS": "560"}, "STALE_STEP_LEASE_SECONDS"),
    ],
)
def test_configuration_errors_name_the_variable_and_index_never_a_value(env, variable):
    with pytest.raises(ConfigError) as caught:
        ChartConfig.from_env({**BASE, **env})
    assert caught.value.variable == variable
    assert "sekrit" not in str(caught.value)


def test_defaults_and_caps():
    config = ChartConfig.from_env(
        {
            **BASE,
            "CHART_IMG_ACCOUNTS_JSON": '[{"id": "a", "apiKey": "sekrit"}]',
            "CHART_IMG_PLAN": "PRO",
            "CHART_IMG_REQUESTS_PER_SECOND": "99",
            "CHART_IMG_DEFAULT_DAILY_LIMIT": "9999",
        }
    )
    assert config.requests_per_second == 10 and config.default_daily_limit == 500
    assert config.common.invocation_timeout_s == 540 and config.common.finalize_budget_s == 60
    assert config.common.lease_s == 660 and config.secrets == ("sekrit",)
    assert "sekrit" not in repr(config)
    mock = ChartConfig.from_env({"ARTIFACTS_BUCKET": "b", "CHARTS_API_MODE": "mock"})
    assert mock.accounts == () and mock.fixtures_dir.is_dir()
    stray = ChartConfig.from_env({**BASE, "CHARTS_API_MODE": "mock"})
    assert stray.accounts == () and stray.secrets == ("sekrit",)  # unused, still gated
