"""Crash injection for the chaos suite, present only when a test variable asks for it.

`WORKER_TEST_CRASH_AT=RUNNING_generate,RUNNING_finalize` makes the process SIGKILL itself on
entering any of those states, before the state does its work: the way an instance dies
mid-flight. With `WORKER_TEST_CRASH_ONCE_DIR`, each (document, unit, state) crashes only once (a
marker file records it), so the redelivery that follows can show recovery. Production never
sets these variables, and then the runner does not install the hook at all.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def crash_hook(environ: Mapping[str, str] = os.environ) -> Callable[[Any, str], None] | None:
    """`hook(unit, state)`, called on entering each state, or None when not asked for."""
    states = {s.strip() for s in environ.get("WORKER_TEST_CRASH_AT", "").split(",") if s.strip()}
    if not states:
        return None
    once_dir = environ.get("WORKER_TEST_CRASH_ONCE_DIR")

    def on_enter(unit: Any, state: str) -> None:
        if state not in states:
            return
        if once_dir:
            marker = Path(once_dir) / f"{unit.doc_id}.{unit.unit_id or 'unit'}.{state}"
            try:
                marker.touch(exist_ok=False)
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)

    return on_enter
