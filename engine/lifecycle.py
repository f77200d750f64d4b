"""A worker's lifecycle declared as data, the `transitions` machine built from it, and the loop
that drives one unit of work through it.

The table is the whole state diagram: the runtime machine, the review diagram (`docs/`) and the
tests are all built from it. Each state names its action — `(unit, payload) -> (trigger,
payload)`, the one place where that state's behaviour lives — and where an exception takes it;
edges name pure guards over the payload. The machine only decides (which edge, under a lock:
one machine per worker per process serves every thread); the engine's loop runs the actions
outside it, so an action's result is the next trigger and its typed payload, and an exception
is routed once, along the exit its state declares (never re-entrant: one error, one way out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal, cast

from transitions import Machine, MachineError
from transitions.extensions import LockedHierarchicalMachine

# An action's result: the trigger to fire next and the payload the next state receives.
Next = tuple[str, Any]
Action = Callable[[Any, Any], Next]
ExitKind = Literal["fail", "abandon", "leave", "strand"]

logging.getLogger("transitions").setLevel(logging.WARNING)  # its INFO lines are not JSON


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
        leaves = [s.name for s in self.flat.values() if "_" in s.name]
        assert not leaves, f"state names may not hold '_': {leaves}"

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


def _flatten(states: tuple[State, ...], prefix: str = "") -> Iterator[tuple[str, State]]:
    for state in states:
        name = f"{prefix}{state.name}"
        yield name, state
        yield from _flatten(state.children, f"{name}_")


def _definition(state: State) -> dict[str, Any]:
    item: dict[str, Any] = {"name": state.name, "final": state.final}
    if state.children:
        item["children"] = [_definition(child) for child in state.children]
    return item


def resolve(path: str) -> Any:
    """A dotted path to its callable, by `transitions`' own resolver (the same one that
    resolves the guards): module attribute lookup, no model involved."""
    return Machine.resolve_callable(path, cast(Any, SimpleNamespace(model=None)))


class Halted(Exception):
    """The machine could not take the way out a state declared: a defect of ours. The unit
    stays in the state it reached (a claimed one is finished by lease recovery)."""


class LifecycleMachine:
    """The one machine of a worker in this process; units are attached for one run each."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self._machine = LockedHierarchicalMachine(model=None, **lifecycle.machine_kwargs("READY"))
        self._actions: dict[str, Action] = {
            name: resolve(state.action) for name, state in lifecycle.flat.items() if state.action
        }
        self.terminal = lifecycle.terminal

    def drive(
        self,
        unit: Any,
        initial: str,
        trigger: str,
        on_enter: Callable[[Any, str], None] | None = None,
        on_error: Callable[[Any, State, Exception], Next] | None = None,
    ) -> None:
        """Runs `unit` from `initial` by `trigger` until a final state (or a halt).

        `on_enter` sees each state before its action runs (the chaos suite's crash hook);
        `on_error` turns an action's exception into the exit trigger of its state.
        """
        self._machine.add_model(unit, initial=initial)
        try:
            payload: Any = None
            while True:
                source = unit.state
                try:
                    moved = unit.trigger(trigger, payload)
                except MachineError as exc:
                    raise Halted(f"no '{trigger}' edge from {unit.state}") from exc
                if not moved:  # every guard refused: the table has a hole
                    raise Halted(f"no '{trigger}' edge from {unit.state} admits the payload")
                unit.trail.append((source, trigger, unit.state))
                if unit.state in self.terminal:
                    return
                if on_enter is not None:
                    on_enter(unit, unit.state)
                action = self._actions[unit.state]
                if payload is not None:  # an error exit carries none: keep what was reached
                    unit.last = payload
                try:
                    trigger, payload = action(unit, payload)
                except Exception as exc:
                    if on_error is None:
                        raise
                    trigger, payload = on_error(unit, self.lifecycle.flat[unit.state], exc)
        finally:
            self._machine.remove_model(unit)
