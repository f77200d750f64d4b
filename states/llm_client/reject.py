"""RUNNING.reject: the candidate stays invalid and no repair is left (SPEC §10 step 6).

Raises the catalogued INVALID_STRUCTURED_OUTPUT, which the state's exit takes to the finalize
with the rejected call's metadata (never its text).
"""

from __future__ import annotations

from engine.errors import Failure
from engine.lifecycle import Next
from states.llm_client.errors import ErrorCode
from states.llm_client.phases import Rejected
from states.llm_client.unit import LlmUnit
from states.llm_client.validate import failure_message


def enter(unit: LlmUnit, rejected: Rejected) -> Next:
    if rejected.generated.attempt > 1:
        unit.log.info("structured_output_repair_attempt_finished", attempt=1, status="invalid")
    raise Failure(
        ErrorCode.INVALID_STRUCTURED_OUTPUT,
        failure_message(rejected.invalid, rejected.generated.response.finish_reason),
    )
