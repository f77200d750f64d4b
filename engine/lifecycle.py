"""A worker's lifecycle declared as data: the states, their actions and exits, the edges.

The table is the whole state diagram: the runtime machine, the review diagram (`docs/`) and the
tests are all built from it. Each state names its action — `(unit, payload) -> (trigger,
payload)`, the one place where that state's behaviour lives — and where an exception takes it;
edges name pure guards over the payload. `engine.machine` builds the `transitions` machine from
it and drives units through it; the table itself imports nothing heavy, so declaring a worker
costs nothing at an instance's cold start.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from engine.machine import LifecycleMachine

# How `transitions` names a nested state (`RUNNING_claim`): its default separator.
SEPARATOR = "_"

# An action's result: the trigger to fire next and the payload the next state receives.
Next = tuple[str, Any]
Action = Callable[[Any, Any], Next]
ExitKind = Literal["fail", "abandon", "leave", "strand"]


@dataclass(frozen=True)
class Exit:
    """Where an exception leaves a state, and how it is recorded on the way:

    - `fail`: the failure is recorded and the unit is finalized as failed (it is ours);
    - `abandon`: the failure is recorded, nothing more is written (nothing was claimed);
    - `leave`: another invocation owns the unit: one error is logged, nothing is touched;
    - `strand`: the finalize itself failed: the unit stays as it is, for recovery.
    """

    kind: ExitKind
    dest: str


@dataclass(frozen=True)
class State:
    """A state of the table. Names hold no '_': the machine joins nested names with it."""

    name: str
    doc: str
    action: str | None = None  # dotted path of the state's `(unit, payload) -> Next`
    children: tuple[State, ...] = ()
    final: bool = False
    on_error: Exit | None = None
    # Taken instead of `on_error` once the unit is ours (a probe after our own claim).
    on_error_owned: Exit | None = None
    error_code: str | None = None  # the code an unanticipated exception here becomes


@dataclass(frozen=True)
class Edge:
    trigger: str
    source: str | tuple[str, ...]
    dest: str
    conditions: tuple[str, ...] = ()  # dotted paths of pure `(payload) -> bool` guards


@dataclass(frozen=True)
class Lifecycle:
    title: str
    states: tuple[State, ...]
    edges: tuple[Edge, ...]
    internal_error_code: str
    flat: dict[str, State] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "flat", dict(_flatten(self.states)))
        leaves = [s.name for s in self.flat.values() if SEPARATOR in s.name]
        assert not leaves, f"state names may not hold {SEPARATOR!r}: {leaves}"

    @property
    def terminal(self) -> frozenset[str]:
        return frozenset(name for name, state in self.flat.items() if state.final)

    def error_edges(self) -> tuple[Edge, ...]:
        """The exits the states declare, as edges of the machine and of the diagram."""
        edges = []
        for name, state in self.flat.items():
            for exit_ in {state.on_error, state.on_error_owned} - {None}:
                assert exit_ is not None
                edges.append(Edge(exit_.kind, name, exit_.dest))
        return tuple(sorted(set(edges), key=lambda e: (str(e.source), e.trigger)))

    def untaken(self, taken: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """The declared edges (table and exits) no `(source, trigger, dest)` of `taken` went
        along: what a worker's scenario suite has yet to exercise. An edge declared on a
        parent state counts as taken from any of its children."""
        runs = set(taken)
        declared = {
            (source, edge.trigger, edge.dest)
            for edge in (*self.edges, *self.error_edges())
            for source in (edge.source if isinstance(edge.source, tuple) else (edge.source,))
        }
        return sorted(
            (source, trigger, dest)
            for source, trigger, dest in declared
            if not any(
                (s == source or s.startswith(source + SEPARATOR)) and t == trigger and d == dest
                for s, t, d in runs
            )
        )

    def machine_kwargs(self, initial: str) -> dict[str, Any]:
        return {
            "states": [_definition(state) for state in self.states],
            "transitions": [
                {
                    "trigger": edge.trigger,
                    "source": list(edge.source) if isinstance(edge.source, tuple) else edge.source,
                    "dest": edge.dest,
                    "conditions": list(edge.conditions),
                }
                for edge in (*self.edges, *self.error_edges())
            ],
            "initial": initial,
            "auto_transitions": False,
            "send_event": False,  # guards see the payload only: they decide, they do not act
        }

    def build(self) -> LifecycleMachine:
        """The runtime machine (imports `transitions`: only a unit's run needs it)."""
        from engine.machine import LifecycleMachine

        return LifecycleMachine(self)

    def mermaid(self) -> str:
        """The lifecycle diagram in Mermaid, drawn from the table itself."""
        from transitions.extensions.diagrams import HierarchicalGraphMachine

        machine = HierarchicalGraphMachine(  # its own model: the diagram needs one
            graph_engine="mermaid",
            title=self.title,
            show_conditions=True,
            **self.machine_kwargs(self.states[0].name),
        )
        source: str = machine.get_graph().source
        return source


@functools.cache
def load_table(path: str) -> Lifecycle:
    """A worker's table by its dotted path: a cold instance whose events are all no-ops never
    imports its states' modules."""
    module, _, name = path.rpartition(".")
    table = getattr(importlib.import_module(module), name)
    assert isinstance(table, Lifecycle), f"{path} is not a Lifecycle"
    return table


def _flatten(states: tuple[State, ...], prefix: str = "") -> Iterator[tuple[str, State]]:
    for state in states:
        name = f"{prefix}{state.name}"
        yield name, state
        yield from _flatten(state.children, f"{name}{SEPARATOR}")


def _definition(state: State) -> dict[str, Any]:
    item: dict[str, Any] = {"name": state.name, "final": state.final}
    if state.children:
        item["children"] = [_definition(child) for child in state.children]
    return item
