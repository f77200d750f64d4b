"""The committed lifecycle diagram must be the one the machine table draws today."""

from __future__ import annotations

from engine.lifecycle import TRANSITIONS
from tools.diagram import TARGET, render


def test_committed_diagram_is_current():
    assert TARGET.read_text(encoding="utf-8") == render(), (
        "docs/lifecycle.md is stale: run `uv run python -m tools.diagram`"
    )


def test_diagram_shows_every_transition_of_the_table():
    drawn = render()
    for edge in TRANSITIONS:
        assert f"{edge.dest}: " in drawn or f"--> {edge.dest}" in drawn
        assert edge.trigger in drawn
