"""The event catalog covers the spec's catalog and every event the code emits."""

from __future__ import annotations

import io
import json
import re

from devstack import REPO_ROOT
from engine.log import EventLogger
from states.llm_client.catalog import PROFILE

CATALOG = PROFILE.catalog
# Every place an event of the LLM worker can come from: the engine, the states it runs, the
# composition root that logs its configuration.
SOURCES = ["engine", "states/flow_run", "states/llm_client", "compose.py"]
EMIT = re.compile(r"\.(?:info|warning|error|debug|emit)\(\s*\"([a-z_]+)\"", re.S)


def emitted_names() -> set[str]:
    root = REPO_ROOT
    names: set[str] = set()
    for source in SOURCES:
        path = root / source
        for file in [path] if path.is_file() else path.rglob("*.py"):
            names |= set(EMIT.findall(file.read_text(encoding="utf-8")))
    return names


def spec_names() -> set[str]:
    spec = (REPO_ROOT / "docs" / "spec" / "SPEC.md").read_text(encoding="utf-8")
    section = spec[spec.index("Event catalog") : spec.index("Typical success order")]
    names: set[str] = set()
    for token in re.findall(r"`([a-z_/]+)`", section):
        head, *tails = token.split("/")
        names.add(head)
        stem = head.rsplit("_", 1)[0]
        names.update(f"{stem}_{tail}" for tail in tails)
    return {n for n in names if "_" in n}


def test_every_spec_event_is_catalogued():
    assert spec_names() - set(CATALOG) == set()


def test_every_emitted_event_is_catalogued():
    names = emitted_names()
    assert len(names) > 30  # the scan found the code
    assert names - set(CATALOG) == set()


def test_the_logger_flags_uncatalogued_events_and_missing_fields():
    sink = io.StringIO()
    log = EventLogger(PROFILE, env="t", stream=sink)
    log.info("made_up_event")
    log.info("claim_attempt", claimed=True)
    first, second = (json.loads(line) for line in sink.getvalue().splitlines())
    assert first["uncatalogued"] is True
    assert second["missingFields"] == ["stepId", "reason"]


def test_a_record_holding_a_secret_value_is_suppressed():
    sink = io.StringIO()
    log = EventLogger(PROFILE.with_secrets(["key-material-1234"]), env="t", stream=sink)
    log.info("claim_attempt", stepId="s", claimed=False, reason="x key-material-1234")
    log.error("worker_exception", state="s", exceptionType="E", detail='"key-material-1234"')
    log.info("claim_attempt", stepId="s", claimed=True, reason="claimed")
    lines = sink.getvalue().splitlines()
    assert "key-material-1234" not in sink.getvalue()
    first, second, third = (json.loads(line) for line in lines)
    assert (first["event"], first["suppressedEvent"]) == ("log_record_suppressed", "claim_attempt")
    assert second["suppressedEvent"] == "worker_exception"
    assert third["event"] == "claim_attempt"
