"""The CHART_EXPORT step lifecycle, declared as data: the whole state diagram of the worker.

READY → claim → probe → inputs → templates → render → pngs → manifest → finalize, with the
pre-flight and the final `minImages` checks as guarded edges into `shortfall`, the adoption of a
manifest already written (after our claim, for a step found RUNNING, or when our own create-only
write finds one), and the lease expiry of stale-step recovery. Every state names where an
exception takes it; `docs/chart_export-lifecycle.md` is drawn from here.
"""

from __future__ import annotations

from engine.lifecycle import Edge, Lifecycle, State
from states.chart_export.errors import ErrorCode
from states.flow_run import table as step

W = "chart_export"
RENDERABLE_ENOUGH = "states.chart_export.phases.renderable_enough"
ENOUGH = "states.chart_export.phases.enough"

LIFECYCLE = Lifecycle(
    title="CHART_EXPORT step lifecycle",
    internal_error_code=ErrorCode.WORKER_INTERNAL_ERROR,
    states=(
        State("READY", "selected: READY, dependencies SUCCEEDED (or unknown: failed visibly)"),
        State(
            "RUNNING",
            "owned by this invocation once claimed",
            children=(
                step.claim(),
                step.probe(W, "manifest"),
                step.working(W, "inputs", "§3 step inputs, in order, on the claimed document"),
                step.working(W, "templates", "§4 template checks and §5 symbols; no quota"),
                step.working(W, "render", "§6-§9 per request: reuse, reserve, call, retry"),
                step.working(W, "pngs", "create-only PNG writes, reuse on 412, 3 tries"),
                step.working(W, "manifest", "the manifest, last and only on success"),
                step.working(W, "shortfall", "fewer images than minImages: the §11 step code"),
                step.adopt(W, "manifest"),
                step.finalize(W),
            ),
        ),
        *step.final_states("manifest"),
    ),
    edges=(
        *step.edges(first="inputs"),
        Edge("checked", "RUNNING_inputs", "RUNNING_templates"),
        Edge("planned", "RUNNING_templates", "RUNNING_render", (RENDERABLE_ENOUGH,)),
        Edge("planned", "RUNNING_templates", "RUNNING_shortfall"),
        Edge("rendered", "RUNNING_render", "RUNNING_pngs"),
        Edge("stored", "RUNNING_pngs", "RUNNING_manifest", (ENOUGH,)),
        Edge("stored", "RUNNING_pngs", "RUNNING_shortfall"),
        Edge("written", "RUNNING_manifest", "RUNNING_finalize"),
        Edge("exists", "RUNNING_manifest", "RUNNING_adopt"),
    ),
)
