"""RUNNING.adopt: finalize from the manifest an earlier execution wrote (§12).

No call, no reservation, no rewrite. The manifest (≤ 65536 bytes) must validate, name this run
and step and list at least its own `minImages` items; then the step succeeds with the manifest's
URI. Anything else is `MANIFEST_INVALID`. A manifest that cannot be read leaves a foreign step
alone (the state's exit); after our own claim the step fails with the retryable
`MANIFEST_WRITE_FAILED` instead — the manifest is there, but this execution could not confirm
it, and the catalogue has no code of its own for a storage read.
"""

from __future__ import annotations

from engine.errors import Failure, StoreUnavailable
from engine.jsontext import JsonRejected, loads
from engine.lifecycle import Next
from engine.ports import BlobNotFound, BlobTooLarge, BlobUndecodable
from states.chart_export.errors import ErrorCode
from states.chart_export.manifest import MAX_BYTES, Existing, validator
from states.chart_export.phases import Adopted
from states.chart_export.unit import ChartUnit, step_id


def enter(unit: ChartUnit, found: str | Existing) -> Next:
    uri = found.uri if isinstance(found, Existing) else found
    source = (
        found.source if isinstance(found, Existing) else ("claim" if unit.owned else "recovery")
    )
    try:
        data = unit.ports.blobs.read(uri, MAX_BYTES)
    except (BlobTooLarge, BlobUndecodable) as exc:
        return rejected(unit, uri, "too_large" if isinstance(exc, BlobTooLarge) else "encoding")
    except (StoreUnavailable, BlobNotFound) as exc:
        if not unit.owned:
            raise  # the exit leaves a step another invocation owns alone
        raise Failure(
            ErrorCode.MANIFEST_WRITE_FAILED,
            f"the manifest exists but could not be read back ({type(exc).__name__})",
        ) from None
    try:
        manifest = loads(data)
    except JsonRejected:
        return rejected(unit, uri, "json")
    if not validator().is_valid(manifest):
        return rejected(unit, uri, "schema")
    if (manifest["runId"], manifest["stepId"]) != (unit.doc_id, step_id(unit)):
        return rejected(unit, uri, "another_step")
    if len(manifest["items"]) < manifest["minImages"]:
        return rejected(unit, uri, "min_images")
    unit.log.info("manifest_adopted", gcsUri=uri, source=source)
    return "adopted", Adopted(
        uri,
        min_images=manifest["minImages"],
        items=len(manifest["items"]),
        failures=len(manifest.get("failures", [])),
    )


def rejected(unit: ChartUnit, uri: str, reason: str) -> Next:
    unit.log.error("manifest_invalid", gcsUri=uri, reason=reason)
    unit.failure = Failure(
        ErrorCode.MANIFEST_INVALID, f"the existing manifest cannot be adopted ({reason})"
    )
    return "rejected", None
