"""The `transitions` machine built from a lifecycle table, and the loop that drives one unit of
work through it.

The machine only decides (which edge, under a lock: one machine per worker per process serves
every thread); the loop runs the actions outside it, so an action's result is the next trigger
and its typed payload, and an exception is routed once, along the exit its state declares
(never re-entrant: one error, one way out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from transitions import Machine, MachineError
from transitions.extensions import LockedHierarchicalMachine

from engine.lifecycle import Action, Lifecycle, Next, State

logging.getLogger("transitions").setLevel(logging.WARNING)  # its INFO lines are not JSON


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
