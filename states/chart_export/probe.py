"""RUNNING.probe: is the step's manifest already written? (CHART_EXPORT §12)

After our claim, a manifest means an earlier execution succeeded (a step reset to READY): it is
adopted before any template read, reservation or call. For a step another invocation claimed
(split brain, stale-step recovery), the manifest means only the finalize was lost; without it,
the step is left alone unless its lease has run out.

A failed existence check after our own claim counts as "absent" (as a failed PNG lookup does,
§10): the work goes on, PNGs already written are reused, and should the manifest exist after
all, our create-only write finds it and adopts it. Failing the step instead would need a code
the catalogue does not have for a storage read. For a foreign step the shared exit leaves it
alone (COMMON.md §4).
"""

from __future__ import annotations

from typing import Any

from engine.errors import StoreUnavailable
from engine.lifecycle import Next
from states.chart_export.unit import ChartUnit, manifest_uri
from states.flow_run.probe import probe


def enter(unit: ChartUnit, _: Any) -> Next:
    return probe(unit, manifest_uri(unit), lambda uri: exists(unit, uri), "manifest")


def exists(unit: ChartUnit, uri: str) -> bool:
    if not unit.owned:
        return unit.ports.blobs.exists(uri)  # may raise: the foreign step is left alone
    try:
        return unit.ports.blobs.exists(uri)
    except StoreUnavailable as exc:
        unit.log.warning("manifest_probe_failed", gcsUri=uri, exceptionType=type(exc).__name__)
        return False
