"""`Lifecycle.untaken`: what the scenario suites of every worker use to prove full coverage."""

from __future__ import annotations

import pytest

from engine.lifecycle import Edge, Exit, Lifecycle, State

TABLE = Lifecycle(
    title="toy",
    internal_error_code="INTERNAL",
    states=(
        State("READY", "start"),
        State(
            "RUNNING",
            "work",
            children=(
                State("a", "first", on_error=Exit("fail", "FAILED")),
                State("b", "second"),
            ),
        ),
        State("DONE", "ok", final=True),
        State("FAILED", "failed", final=True),
    ),
    edges=(
        Edge("start", "READY", "RUNNING_a"),
        Edge("next", "RUNNING_a", "RUNNING_b"),
        Edge("done", "RUNNING_b", "DONE"),
        Edge("cancel", "RUNNING", "FAILED"),
    ),
)
# A run that took each declared edge (the parent's `cancel` taken from a child).
DECLARED_BY_RUN = {
    ("READY", "start", "RUNNING_a"): ("READY", "start", "RUNNING_a"),
    ("RUNNING_a", "next", "RUNNING_b"): ("RUNNING_a", "next", "RUNNING_b"),
    ("RUNNING_b", "done", "DONE"): ("RUNNING_b", "done", "DONE"),
    ("RUNNING_b", "cancel", "FAILED"): ("RUNNING", "cancel", "FAILED"),
    ("RUNNING_a", "fail", "FAILED"): ("RUNNING_a", "fail", "FAILED"),
}
EVERY = set(DECLARED_BY_RUN)


def test_every_edge_taken_leaves_nothing():
    assert TABLE.untaken(EVERY) == []


@pytest.mark.parametrize(("left_out", "declared"), sorted(DECLARED_BY_RUN.items()))
def test_an_edge_not_taken_is_named_as_declared(left_out, declared):
    assert TABLE.untaken(EVERY - {left_out}) == [declared]


def test_a_parent_edge_counts_from_any_child_but_not_from_a_namesake():
    taken = EVERY - {("RUNNING_b", "cancel", "FAILED")}
    assert TABLE.untaken(taken | {("RUNNING_a", "cancel", "FAILED")}) == []
    assert TABLE.untaken(taken | {("RUNNINGX", "cancel", "FAILED")}) == [
        ("RUNNING", "cancel", "FAILED")
    ]
