"""Shared fixtures: one instance of each local service per session, clean state per test."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore as gcf
from google.cloud import storage  # type: ignore[attr-defined]
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.location import PyTestLocation

from devstack import REPO_ROOT
from devstack.cloudevents import firestore_update_event
from devstack.gemini_stub import GeminiStub
from devstack.services import (
    DEFAULT_PROJECT,
    FakeGcs,
    FirestoreEmulator,
    FunctionServer,
    ServiceMissing,
    post_event,
)
from tests import scenario

PROJECT = DEFAULT_PROJECT
FAKE_GEMINI_API_KEY = "test-key-not-a-secret-0000"
SNAPSHOT_ROOT = REPO_ROOT / "snapshots"

# Captured at import, before any test monkeypatches os.environ, so function processes started
# lazily mid-session do not inherit one test's temporary variables.
_PRISTINE_ENV = dict(os.environ)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


# --------------------------------------------------------------------------------------
# Session services
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    """The Firestore emulator; a missing install fails in CI and skips locally."""
    emulator = FirestoreEmulator(project=PROJECT, log_dir=tmp_path_factory.mktemp("firestore"))
    missing: str | None = None
    try:
        emulator.start()
    except ServiceMissing as exc:
        missing = str(exc)
    if missing is not None:
        if _in_ci():
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    server = FakeGcs(log_dir=tmp_path_factory.mktemp("fake-gcs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gemini_stub() -> Iterator[GeminiStub]:
    stub = GeminiStub().start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture(scope="session")
def service_env(
    firestore_emulator: FirestoreEmulator, fake_gcs: FakeGcs, gemini_stub: GeminiStub
) -> dict[str, str]:
    """Environment a function process needs to reach the local services."""
    return {
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
        "STORAGE_EMULATOR_HOST": fake_gcs.endpoint,
        "GOOGLE_GEMINI_BASE_URL": gemini_stub.base_url,
        "GCP_PROJECT": PROJECT,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GEMINI_API_KEY": FAKE_GEMINI_API_KEY,
    }


StartFunction = Callable[..., FunctionServer]


@pytest.fixture(scope="session")
def function_server_factory(
    tmp_path_factory: pytest.TempPathFactory, service_env: dict[str, str]
) -> Iterator[StartFunction]:
    """`start(extra_env=None, target="on_flow_run_updated", source=None) -> FunctionServer`.

    Servers are cached per (target, source, env), so many tests share a few processes;
    all of them are stopped at session end.
    """
    servers: dict[tuple[object, ...], FunctionServer] = {}
    lock = threading.Lock()
    log_dir = tmp_path_factory.mktemp("functions")

    def start(
        extra_env: Mapping[str, str] | None = None,
        target: str = "on_flow_run_updated",
        source: Path | str | None = None,
        signature_type: str = "cloudevent",
    ) -> FunctionServer:
        env = {**service_env, **(extra_env or {})}
        key = (target, str(source), signature_type, tuple(sorted(env.items())))
        with lock:
            server = servers.get(key)
            if server is not None and server.running:
                return server
            if server is not None:
                server.stop()
            server = FunctionServer(
                env=env,
                target=target,
                source=source,
                signature_type=signature_type,
                base_env=_PRISTINE_ENV,
                log_dir=log_dir,
            )
            servers[key] = server
            server.start()
            return server

    try:
        yield start
    finally:
        # Side by side: each gunicorn takes a moment to exit, and a session leaves dozens.
        with ThreadPoolExecutor(8, thread_name_prefix="stop-functions") as pool:
            list(pool.map(FunctionServer.stop, servers.values()))


# --------------------------------------------------------------------------------------
# Per-test clean state
# --------------------------------------------------------------------------------------


@pytest.fixture
def gemini(gemini_stub: GeminiStub) -> Iterator[GeminiStub]:
    """The session Gemini stub with an empty script and no recorded requests."""
    gemini_stub.reset()
    yield gemini_stub
    gemini_stub.reset()


@pytest.fixture
def firestore(
    firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[gcf.Client]:
    """A Firestore client on an emptied emulator (FIRESTORE_EMULATOR_HOST set for this test)."""
    firestore_emulator.reset()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    client = gcf.Client(project=firestore_emulator.project)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def gcs(fake_gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch) -> Iterator[storage.Client]:
    """A Storage client on an emptied fake-gcs (STORAGE_EMULATOR_HOST set for this test)."""
    fake_gcs.reset()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.endpoint)
    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
    try:
        yield client
    finally:
        client.close()


# --------------------------------------------------------------------------------------
# Snapshots in <repo>/snapshots/<test module>/<test name>.json
# --------------------------------------------------------------------------------------


class RepoJSONSnapshotExtension(JSONSnapshotExtension):
    """JSON snapshots under the top-level `snapshots/` folder instead of `__snapshots__`."""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAPSHOT_ROOT / test_location.basename)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(RepoJSONSnapshotExtension)


# --------------------------------------------------------------------------------------
# A seeded world: services, the function, and the journal of its Firestore writes
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def journal(tmp_path_factory: pytest.TempPathFactory) -> scenario.Journal:
    return scenario.Journal(tmp_path_factory.mktemp("journal") / "writes.jsonl")


@dataclass
class World:
    db: Any
    gcs: Any
    gemini: GeminiStub
    server: FunctionServer
    journal: scenario.Journal
    start_function: Any

    def deliver(
        self, doc: dict[str, Any] | None = None, server: FunctionServer | None = None, **event: Any
    ) -> int:
        headers, body = firestore_update_event(
            project=PROJECT, run_id=event.pop("run_id", scenario.RUN_ID), document=doc, **event
        )
        return post_event((server or self.server).url, headers, body)


@pytest.fixture
def world(firestore, gcs, gemini, function_server_factory, journal) -> World:
    env = {"ARTIFACTS_BUCKET": scenario.BUCKET, "WORKER_WRITE_JOURNAL": str(journal.path)}
    return World(
        firestore,
        gcs,
        gemini,
        function_server_factory(env),
        journal,
        lambda extra: function_server_factory({**env, **extra}),
    )
