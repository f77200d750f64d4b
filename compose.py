"""The composition root: builds a worker from configuration, and nothing else does.

The Cloud Functions in `entry.py`, the command lines, the benchmarks, the chaos harness and the
tests all call `build` (any port may be overridden, e.g. by an in-memory store or a fake model).
Adapters create their clients on first use, so building is cheap: a cold instance that only
sees no-ops never imports the Google clients or the Gemini SDK.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

import msgspec

from engine.clock import parse_rfc3339, utc_now
from engine.config import ConfigError
from engine.log import EventLogger, LogProfile
from engine.runner import Runner, Worker

# Test-only: WORKER_WRITE_JOURNAL names a file that receives each committed Firestore write as
# a JSON line, so snapshot tests can see the ordered writes of another process.
JOURNAL_VARIABLE = "WORKER_WRITE_JOURNAL"
# Test-only: WORKER_TEST_NOW sets the worker's wall clock at start (RFC3339); time then runs
# normally. Vectors fix "today" this way (a usage window, a lease). Production never sets it.
CLOCK_VARIABLE = "WORKER_TEST_NOW"


@dataclass(frozen=True)
class Assembly:
    """What it takes to build one worker: its declaration, its configuration, how it logs,
    and its production ports (each replaceable by an override of the same name)."""

    worker: Callable[[], Worker[Any, Any, Any]]
    config: Callable[[Mapping[str, str]], Any]
    profile: Callable[[], LogProfile]
    ports: Callable[[Any, Mapping[str, Any], Callable[[dict[str, Any]], None] | None], Any]
    configured: Callable[[Any], dict[str, Any]]


def _llm_worker() -> Worker[Any, Any, Any]:
    from states.llm_client import WORKER

    return WORKER


def _llm_config(environ: Mapping[str, str]) -> Any:
    from states.llm_client.config import LlmConfig

    return LlmConfig.from_env(environ)


def _llm_profile() -> LogProfile:
    from states.llm_client.catalog import PROFILE

    return PROFILE


def _llm_ports(
    config: Any, overrides: Mapping[str, Any], journal: Callable[[dict[str, Any]], None] | None
) -> Any:
    from adapters.firestore import FirestoreDocumentStore, FirestoreRegistry
    from adapters.gcs import GcsBlobStore
    from adapters.gemini import GeminiLLM
    from adapters.registries import PromptSchemaRegistry
    from states.llm_client.ports import LlmPorts

    project, database = config.common.gcp_project, config.common.firestore_database

    def made(name: str, make: Callable[[], Any]) -> Any:
        return overrides[name] if name in overrides else make()

    return LlmPorts(
        store=made("store", lambda: FirestoreDocumentStore(project, database, journal=journal)),
        registry=made(
            "registry",
            lambda: PromptSchemaRegistry(
                FirestoreRegistry(project, database),
                config.prompts_collection,
                config.schemas_collection,
            ),
        ),
        blobs=made("blobs", lambda: GcsBlobStore(project)),
        llm=made("llm", lambda: GeminiLLM(config.gemini.api_key)),
    )


def _chart_worker() -> Worker[Any, Any, Any]:
    from states.chart_export import WORKER

    return WORKER


def _chart_config(environ: Mapping[str, str]) -> Any:
    from states.chart_export.config import ChartConfig

    return ChartConfig.from_env(environ)


def _chart_profile() -> LogProfile:
    from states.chart_export.catalog import PROFILE

    return PROFILE


def _chart_ports(
    config: Any, overrides: Mapping[str, Any], journal: Callable[[dict[str, Any]], None] | None
) -> Any:
    """Ports by mode (CHART_EXPORT §14): `real` calls Chart-IMG and reserves quota on Firestore;
    `mock` replays fixtures and touches no usage document; `record` replays what it has and
    records the rest, counting reservations in instance memory only."""
    from adapters.chart_templates import FirestoreTemplates
    from adapters.firestore import FirestoreDocumentStore
    from adapters.gcs import GcsBlobStore
    from states.chart_export.ports import ChartPorts

    project, database = config.common.gcp_project, config.common.firestore_database

    def made(name: str, make: Callable[[], Any]) -> Any:
        return overrides[name] if name in overrides else make()

    api, usage, needs_account, recorded = _chart_modes(config, made)
    extras = {
        name: overrides[name] for name in ("template_cache", "book", "sleep") if name in overrides
    }
    return ChartPorts(
        store=made("store", lambda: FirestoreDocumentStore(project, database, journal=journal)),
        blobs=made("blobs", lambda: GcsBlobStore(project)),
        templates=made(
            "templates",
            lambda: FirestoreTemplates(project, database, config.templates_collection),
        ),
        chart_api=api,
        usage=usage,
        needs_account=needs_account,
        recorded=recorded,
        **extras,
    )


def _chart_modes(config: Any, made: Callable[[str, Callable[[], Any]], Any]) -> tuple[Any, ...]:
    """(chart api, usage store or None, needs-account rule, drain of recorded fixtures)."""
    from adapters.chart_img import ChartImgHttp, FixtureChartApi, RecordingChartApi
    from adapters.chart_usage import FirestoreUsageStore, MemoryUsageStore
    from states.chart_export.ports import always, no_recordings

    if config.mode == "mock":
        api = made("chart_api", lambda: FixtureChartApi(config.fixtures_dir, config.max_png_bytes))
        return api, None, lambda _request: False, no_recordings
    if config.mode == "real":
        api = made("chart_api", lambda: ChartImgHttp(config.base_url, config.max_png_bytes))
        usage = made(
            "usage",
            lambda: FirestoreUsageStore(
                config.common.gcp_project,
                config.common.firestore_database,
                config.usage_collection,
                config.default_daily_limit,
                config.daily_max,
            ),
        )
        return api, usage, always, no_recordings
    recordings: list[str] = []
    lock = threading.Lock()

    def recorded(path: Any) -> None:
        with lock:
            recordings.append(path.name)

    def drain() -> list[str]:
        with lock:
            taken = list(recordings)
            recordings.clear()
        return taken

    api = made(
        "chart_api",
        lambda: RecordingChartApi(
            ChartImgHttp(config.base_url, config.max_png_bytes),
            config.fixtures_dir,
            config.max_png_bytes,
            on_recorded=recorded,
        ),
    )
    usage = made("usage", lambda: MemoryUsageStore(config.default_daily_limit, config.daily_max))
    replays = getattr(api, "has_fixture", None)
    return api, usage, (lambda request: not replays(request)) if replays else always, drain


def _backtest_worker() -> Worker[Any, Any, Any]:
    from states.backtest.worker import WORKER

    return WORKER


def _backtest_config(environ: Mapping[str, str]) -> Any:
    from states.backtest.config import BacktestConfig

    return BacktestConfig.from_env(environ)


def _backtest_profile() -> LogProfile:
    from states.backtest.catalog import PROFILE

    return PROFILE


def _backtest_ports(
    config: Any, overrides: Mapping[str, Any], journal: Callable[[dict[str, Any]], None] | None
) -> Any:
    """Firestore for jobs and results, Cloud Storage for history CSVs; the Wheel engine is pure
    and needs no port. Each client is created on first use (a no-op imports neither)."""
    from adapters.firestore import FirestoreDocumentStore
    from adapters.gcs import GcsBlobStore
    from states.backtest.ports import BacktestPorts

    project, database = config.common.gcp_project, config.common.firestore_database

    def made(name: str, make: Callable[[], Any]) -> Any:
        return overrides[name] if name in overrides else make()

    return BacktestPorts(
        store=made("store", lambda: FirestoreDocumentStore(project, database, journal=journal)),
        history=made("history", lambda: GcsBlobStore(project)),
    )


ASSEMBLIES: dict[str, Assembly] = {
    "llm_client": Assembly(
        worker=_llm_worker,
        config=_llm_config,
        profile=_llm_profile,
        ports=_llm_ports,
        configured=lambda config: {
            "auth": {"mode": config.gemini.mode, "keyId": config.gemini.key_id}
        },
    ),
    "chart_export": Assembly(
        worker=_chart_worker,
        config=_chart_config,
        profile=_chart_profile,
        ports=_chart_ports,
        configured=lambda config: {
            "mode": config.mode,
            "plan": config.plan.name,
            "accounts": [account.id for account in config.accounts],
        },
    ),
    "backtest": Assembly(
        worker=_backtest_worker,
        config=_backtest_config,
        profile=_backtest_profile,
        ports=_backtest_ports,
        configured=lambda config: {
            "leaseSeconds": config.common.lease_s,
            "historyBucketSet": config.history_bucket is not None,
        },
    ),
}


def build(
    name: str,
    environ: Mapping[str, str] | None = None,
    *,
    config: Any = None,
    stream: IO[str] | None = None,
    level: str | None = None,
    now: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
    observe: Callable[[Any], None] | None = None,
    **overrides: Any,
) -> Runner[Any, Any, Any]:
    """The worker `name`, configured from `environ` (default: the process environment) or
    from a ready `config`, with production adapters except those given as overrides.

    An invalid configuration is logged once as `config_invalid` (the variable's name, never
    its value) and raised: the worker then reads and writes nothing (COMMON.md §6)."""
    assembly = ASSEMBLIES[name]
    environ = os.environ if environ is None else environ
    profile = assembly.profile()
    if config is None:
        try:
            config = assembly.config(environ)
        except ConfigError as exc:
            EventLogger(profile, env=environ.get("ENV", "dev"), stream=stream).error(
                "config_invalid", variable=exc.variable, error=str(exc)
            )
            raise
    if now is utc_now and environ.get(CLOCK_VARIABLE):
        now = _test_clock(environ[CLOCK_VARIABLE], monotonic)
    journal_path = environ.get(JOURNAL_VARIABLE)
    journal = _journal(journal_path) if journal_path else None
    ports = assembly.ports(config, overrides, journal)
    log = EventLogger(
        profile.with_secrets(getattr(config, "secrets", ())),
        env=config.common.env,
        level=level or config.common.log_level,
        stream=stream,
    )
    log.info("worker_configured", **assembly.configured(config))
    return Runner(
        assembly.worker(), config, ports, log, now=now, monotonic=monotonic, observe=observe
    )


def _test_clock(start: str, monotonic: Callable[[], float]) -> Callable[[], datetime]:
    origin, instant = monotonic(), parse_rfc3339(start)
    if instant is None or instant.tzinfo is None:
        raise ConfigError(CLOCK_VARIABLE, "must be an RFC3339 time with an offset")
    return lambda: instant + timedelta(seconds=monotonic() - origin)


def _journal(path: str) -> Callable[[dict[str, Any]], None]:
    lock = threading.Lock()

    def record(entry: dict[str, Any]) -> None:
        with lock, open(path, "ab") as sink:
            sink.write(msgspec.json.encode(entry) + b"\n")

    return record


# --- one runner per worker per instance, for the deployed functions --------------------------

_lock = threading.Lock()
_runners: dict[str, Runner[Any, Any, Any]] = {}
_failed: dict[str, ConfigError] = {}


def instance(name: str) -> Runner[Any, Any, Any]:
    """The instance's runner of `name`, built on first use. A configuration error is found
    once per instance: later invocations fail at once, reading and writing nothing."""
    with _lock:
        if name in _failed:
            raise _failed[name]
        if name not in _runners:
            try:
                _runners[name] = build(name)
            except ConfigError as exc:
                _failed[name] = exc
                raise
        return _runners[name]


def deliver(name: str, cloud_event: Any) -> None:
    """One Eventarc delivery to worker `name` (the body of a CloudEvent function)."""
    started = time.monotonic()
    from adapters.cloudevents import request_trace_header, to_event

    runner = instance(name)
    event = to_event(cloud_event, runner.config.common.gcp_project, request_trace_header())
    runner.handle(event, started=started)


def recover(name: str) -> tuple[str, int, dict[str, str]]:
    """One stale-work scan of worker `name` (the body of its scheduler-called HTTP function)."""
    started = time.monotonic()
    runner = instance(name)
    summary = runner.scan(runner.config.common.lease_s, started=started)
    return msgspec.json.encode(summary).decode(), 200, {"Content-Type": "application/json"}
