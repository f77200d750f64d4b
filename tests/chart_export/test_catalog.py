"""The chart worker's event catalog covers §15 and every event its code emits; what it ships
in its package (schemas, templates, fixtures) is the contracts' own content."""

from __future__ import annotations

import re

import pytest

from devstack import REPO_ROOT
from states.chart_export.catalog import PROFILE
from states.chart_export.config import SHIPPED_FIXTURES, SHIPPED_TEMPLATES
from tests.contracts import CONTRACTS

SOURCES = ["engine", "states/flow_run", "states/chart_export", "compose.py"]
EMIT = re.compile(r"\.(?:info|warning|error|debug|emit)\(\s*\"([a-z_]+)\"", re.S)
FORBIDDEN_BY_15 = ("x-api-key", "xApiKey", "apiKeys", "headers", "requestHeaders", "accountsJson",
                   "responseBody", "apiKey")  # fmt: skip


def emitted() -> set[str]:
    names: set[str] = set()
    for source in SOURCES:
        path = REPO_ROOT / source
        for file in [path] if path.is_file() else path.rglob("*.py"):
            names |= set(EMIT.findall(file.read_text(encoding="utf-8")))
    return names


def spec_events() -> set[str]:
    spec = (REPO_ROOT / "docs" / "spec" / "CHART_EXPORT.md").read_text(encoding="utf-8")
    section = spec[spec.index("## 15. Logging") : spec.index("## 16.")]
    section = section[section.index("- Events") :]
    names: set[str] = set()
    for token in re.findall(r"`([a-z_/]+)`", section):
        head, *tails = token.split("/")
        if head.startswith("_"):  # `_parsed` continues `cloud_event_received`
            names.add("cloud_event" + head)
            continue
        names.add(head)
        names.update(f"{head.rsplit('_', 1)[0]}_{tail}" for tail in tails)
    return {n for n in names if "_" in n}


def test_every_emitted_event_is_catalogued():
    assert emitted() - set(PROFILE.catalog) == set()


def test_every_event_of_the_spec_is_catalogued():
    assert spec_events() - set(PROFILE.catalog) == set()


@pytest.mark.parametrize("key", FORBIDDEN_BY_15)
def test_the_forbidden_keys_of_15_are_refused(key):
    from engine.log import forbidden_keys

    assert forbidden_keys({"nested": [{key: "x"}]}, PROFILE.forbidden) == [key]


def test_the_package_ships_the_contracts_schemas_templates_and_fixtures():
    charts = CONTRACTS / "chart_export"
    shipped = SHIPPED_TEMPLATES.parent / "schemas"
    for name in ("chart_template.schema.json", "charts_outputs_manifest.schema.json"):
        assert (shipped / name).read_bytes() == (charts / name).read_bytes()
    seeds = {p.name: p.read_bytes() for p in (charts / "chart-templates").glob("*.json")}
    assert {p.name: p.read_bytes() for p in SHIPPED_TEMPLATES.glob("*.json")} == seeds
    for fixture in (charts / "fixtures" / "mock").iterdir():
        assert (SHIPPED_FIXTURES / fixture.name).read_bytes() == fixture.read_bytes()
