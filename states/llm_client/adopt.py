"""RUNNING.adopt: finalize from the report an earlier execution wrote (SPEC §5).

No model call and no rewrite: the report is read back only to check it is a report of this run
and step (create-only writes could never replace anything else at its path) and to record what
it says about its model call.
"""

from __future__ import annotations

import msgspec

from engine.errors import Failure
from engine.lifecycle import Next
from states.llm_client.contracts import LLMReportFile
from states.llm_client.errors import ErrorCode
from states.llm_client.phases import Adopted
from states.llm_client.ports import LLMResponse
from states.llm_client.unit import LlmUnit, step_id

REPORT_READ_LIMIT = 16 * 1024 * 1024


def enter(unit: LlmUnit, uri: str) -> Next:
    report = own_report(unit, unit.ports.blobs.read(uri, REPORT_READ_LIMIT))
    if report is None:
        unit.failure = Failure(
            ErrorCode.ARTIFACT_INVALID,
            "the report object exists but is not a report of this run and step",
        )
        return "rejected", None
    llm = report.metadata.llm
    response = LLMResponse(
        text=None,
        finish_reason=llm.finish_reason,
        model_version=llm.model_version,
        usage_metadata=llm.usage_metadata,
    )
    unit.log.info("step_recovered_from_artifact", gcsUri=uri)
    return "adopted", Adopted(uri, response)


def own_report(unit: LlmUnit, data: bytes) -> LLMReportFile | None:
    try:
        report = msgspec.json.decode(data, type=LLMReportFile)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if (report.metadata.run_id, report.metadata.step_id) != (unit.doc_id, step_id(unit)):
        return None
    return report
