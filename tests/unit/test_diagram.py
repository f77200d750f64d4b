"""The committed lifecycle diagrams must be the ones the tables draw today."""

from __future__ import annotations

import pytest

from tools.diagram import lifecycle_of, main, render, target, workers


@pytest.mark.parametrize("name", workers())
def test_committed_diagram_is_current(name):
    assert target(name).read_text(encoding="utf-8") == render(name), (
        f"{target(name)} is stale: run `uv run python -m tools.diagram --write`"
    )


@pytest.mark.parametrize("name", workers())
def test_diagram_shows_every_edge_and_exit_of_the_table(name):
    drawn = render(name)
    lifecycle = lifecycle_of(name)
    for edge in (*lifecycle.edges, *lifecycle.error_edges()):
        assert f"--> {edge.dest}: " in drawn
        assert edge.trigger in drawn
    for flat in lifecycle.flat:
        assert f"| `{flat}` |" in drawn


def test_the_command_prints_by_default_and_checks_on_request(capsys, tmp_path, monkeypatch):
    name = workers()[0]
    assert main([name]) == 0
    assert capsys.readouterr().out == render(name)
    monkeypatch.setattr("tools.diagram.DOCS", tmp_path)
    assert main(["--check", name]) == 1  # nothing written there yet: stale
    assert main(["--write", name]) == 0
    assert main(["--check", name]) == 0
