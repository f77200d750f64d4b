"""The LLM_REPORT step lifecycle, declared as data.

This table is the whole state diagram: the runtime machine, the review diagram
(`docs/lifecycle.md`) and the tests are all built from it. Callbacks and guards are named by
dotted path; each names the one place where that state's behaviour lives (`states/`).

A state's `on_enter` does its work through the ports and ends by firing the next trigger;
the machine is queued, so that trigger runs after the current transition completes. Any
exception escaping a callback fires `fail`, which routes to `finalize` — a claimed step never
stays RUNNING because of an error in our code — and every state has a `fail` way out: a probe
of a step another invocation owns ends UNCHANGED, a failed finalize ends STRANDED.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transitions.extensions.nesting import HierarchicalMachine


@dataclass(frozen=True)
class StateSpec:
    name: str
    doc: str
    on_enter: str | None = None
    children: tuple[StateSpec, ...] = ()
    final: bool = False


@dataclass(frozen=True)
class Edge:
    trigger: str
    source: str | tuple[str, ...]
    dest: str
    conditions: tuple[str, ...] = ()
    before: str | None = None


STATES: tuple[StateSpec, ...] = (
    StateSpec("READY", "selected: READY, dependencies SUCCEEDED"),
    StateSpec(
        "RUNNING",
        "owned by this invocation once claimed",
        children=(
            StateSpec(
                "claim",
                "READY to RUNNING with an update_time precondition",
                on_enter="states.claim.enter",
            ),
            StateSpec(
                "resolve",
                "inputs, llmProfile, prompt and schema registries",
                on_enter="states.resolve.enter",
            ),
            StateSpec(
                "assemble",
                "OHLCV, charts and previous reports from GCS",
                on_enter="states.assemble.enter",
            ),
            StateSpec(
                "generate", "one Gemini generateContent call", on_enter="states.generate.enter"
            ),
            StateSpec(
                "validate",
                "JSON parse and registry schema validation",
                on_enter="states.validate.enter",
            ),
            StateSpec("write", "create-only report artifact", on_enter="states.write.enter"),
            StateSpec(
                "recover",
                "adopt the deterministic artifact already written",
                on_enter="states.recover.enter",
            ),
            StateSpec(
                "finalize",
                "RUNNING to SUCCEEDED or FAILED, status-gated",
                on_enter="states.finalize.enter",
            ),
        ),
    ),
    StateSpec("SUCCEEDED", "report written and recorded", final=True),
    StateSpec("FAILED", "catalogued error recorded on the step", final=True),
    StateSpec(
        "UNCHANGED", "another invocation owns or finished the step; nothing written", final=True
    ),
    StateSpec("STRANDED", "finalize could not be written; left to recovery", final=True),
)

_WORKING = (
    "RUNNING_resolve",
    "RUNNING_assemble",
    "RUNNING_generate",
    "RUNNING_validate",
    "RUNNING_write",
    "RUNNING_recover",
)

TRANSITIONS: tuple[Edge, ...] = (
    Edge("start", "READY", "RUNNING_claim"),
    Edge("claimed", "RUNNING_claim", "RUNNING_resolve"),
    Edge("claim_lost", "RUNNING_claim", "UNCHANGED"),
    Edge("resolved", "RUNNING_resolve", "RUNNING_assemble"),
    Edge("found", "RUNNING_resolve", "RUNNING_recover"),
    Edge("assembled", "RUNNING_assemble", "RUNNING_generate"),
    Edge("generated", "RUNNING_generate", "RUNNING_validate"),
    Edge("valid", "RUNNING_validate", "RUNNING_write"),
    Edge(
        "invalid",
        "RUNNING_validate",
        "RUNNING_generate",
        conditions=("states.validate.repair_allowed",),
    ),
    Edge("invalid", "RUNNING_validate", "RUNNING_finalize", before="states.validate.give_up"),
    Edge("written", "RUNNING_write", "RUNNING_finalize"),
    Edge("recover", "RUNNING", "RUNNING_recover", conditions=("states.recover.artifact_exists",)),
    Edge("reap", "RUNNING", "RUNNING_recover", conditions=("states.recover.artifact_exists",)),
    Edge(
        "reap",
        "RUNNING",
        "RUNNING_finalize",
        conditions=("states.recover.lease_expired",),
        before="states.recover.expire",
    ),
    Edge("adopted", "RUNNING_recover", "RUNNING_finalize"),
    Edge("fail", _WORKING, "RUNNING_finalize"),
    Edge("fail", "RUNNING_claim", "UNCHANGED"),
    # Probing a step another invocation owns: a failed artifact lookup leaves it untouched.
    Edge("fail", "RUNNING", "UNCHANGED"),
    Edge("fail", "RUNNING_finalize", "STRANDED"),
    Edge("finalized", "RUNNING_finalize", "SUCCEEDED", conditions=("states.finalize.succeeded",)),
    Edge("finalized", "RUNNING_finalize", "FAILED"),
    Edge("finalize_skipped", "RUNNING_finalize", "UNCHANGED"),
)

TERMINAL = frozenset(s.name for s in STATES if s.final)


def _resolve(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.rpartition(".")
    target: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    return target


def _bound(path: str) -> Callable[..., Any]:
    """Adapts `states.x.fn(run)` to the machine's EventData calling convention."""
    target = _resolve(path)

    def call(event: Any) -> Any:
        return target(event.model)

    call.__name__ = path.removeprefix("states.")
    return call


def _state_defs(specs: tuple[StateSpec, ...]) -> list[dict[str, Any]]:
    defs: list[dict[str, Any]] = []
    for spec in specs:
        item: dict[str, Any] = {"name": spec.name, "final": spec.final}
        if spec.on_enter:
            item["on_enter"] = [_bound(spec.on_enter)]
        if spec.children:
            item["children"] = _state_defs(spec.children)
        defs.append(item)
    return defs


def _transition_defs() -> list[dict[str, Any]]:
    defs: list[dict[str, Any]] = []
    for edge in TRANSITIONS:
        item: dict[str, Any] = {
            "trigger": edge.trigger,
            "source": list(edge.source) if isinstance(edge.source, tuple) else edge.source,
            "dest": edge.dest,
            "conditions": [_bound(c) for c in edge.conditions],
        }
        if edge.before:
            item["before"] = [_bound(edge.before)]
        defs.append(item)
    return defs


def _on_exception(event: Any) -> None:
    event.model.on_error(event.error)


def machine_kwargs(initial: str) -> dict[str, Any]:
    """Everything both the runtime machine and the diagram machine are built from."""
    from engine.faults import crash_hook

    hook = crash_hook()
    return {
        **({"before_state_change": [hook]} if hook else {}),
        "states": _state_defs(STATES),
        "transitions": _transition_defs(),
        "initial": initial,
        "queued": True,
        "send_event": True,
        "auto_transitions": False,
        "on_exception": [_on_exception],
    }


def attach(model: Any, initial: str) -> HierarchicalMachine:
    """Binds a fresh machine to one step execution (`model.trigger`, `model.state`)."""
    return HierarchicalMachine(model=model, **machine_kwargs(initial))


def mermaid() -> str:
    """The lifecycle diagram in Mermaid, drawn from the table itself."""
    from transitions.extensions.diagrams import HierarchicalGraphMachine

    machine = HierarchicalGraphMachine(
        graph_engine="mermaid",
        title="LLM_REPORT step lifecycle",
        show_conditions=True,
        **machine_kwargs("READY"),
    )
    source: str = machine.get_graph().source
    return source
