"""The flow run document as the step workers read it (`contracts/flow_run.schema.json`).

Decoding tolerates unknown fields (the orchestrator and the other worker own most of a flow run)
and types only the subset the workers rely on; everything else stays plain JSON.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from msgspec import Struct

RUN_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}_[A-Z0-9]+(?:-[A-Z0-9]+)*_[a-z0-9]{3,6}$")

RunStatus = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
JsonObject = dict[str, Any]


class Step(Struct, rename="camel", kw_only=True):
    """One node of the flow run graph; only what selection and the workers read."""

    step_type: str = ""
    status: str = ""
    depends_on: list[str] | None = None
    timeframe: str | None = None
    inputs: JsonObject = {}
    outputs: JsonObject = {}

    @property
    def dependencies(self) -> list[str]:
        return self.depends_on or []

    @property
    def gcs_uri(self) -> str | None:
        uri = self.outputs.get("gcs_uri")
        return uri if isinstance(uri, str) and uri else None


class Scope(Struct, kw_only=True):
    symbol: str | None = None


class FlowRun(Struct, rename="camel", kw_only=True):
    """The run-level required subset of SPEC §2 (the rest of the document is ignored)."""

    status: RunStatus
    steps: dict[str, Step]
    run_id: str | None = None
    flow_key: str | None = None
    scope: Scope | None = None

    @property
    def symbol(self) -> str | None:
        return self.scope.symbol if self.scope else None
