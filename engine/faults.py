"""Crash injection for the chaos suite, present only when a test variable asks for it.

`WORKER_TEST_CRASH_AT=RUNNING_generate,RUNNING_finalize` makes the process SIGKILL itself on
entering any of those states, before the state does its work: the way an instance dies
mid-flight. With `WORKER_TEST_CRASH_ONCE_DIR`, each (document, unit, state) crashes only once (a
marker file records it, holding the pid it is about to kill), so the redelivery that follows can
show recovery and a test can match each marker to the kill the server logged, even when two
threads of one process reach armed states together and die in one kill. Production never sets
these variables, and then the runner does not install the hook at all.
"""

from __future__ import annotations

import os
import signal
import threading
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
        name = f"{unit.doc_id}.{unit.unit_id or 'unit'}.{state}"
        if once_dir and not _first_crash(Path(once_dir) / name):
            return
        os.kill(os.getpid(), signal.SIGKILL)

    return on_enter


def _first_crash(marker: Path) -> bool:
    """Create `marker` holding our pid, or return False when it exists already.

    The pid is written to a hidden file that is then hard-linked into place, so a marker never
    exists empty: a neighbour thread's kill can stop this one before the link (no marker, the
    state stays armed) or after it (the marker names the process that died), never in between.
    """
    pending = marker.with_name(f".{marker.name}.{os.getpid()}.{threading.get_ident()}")
    pending.write_text(str(os.getpid()))
    try:
        os.link(pending, marker)
    except FileExistsError:
        return False
    finally:
        pending.unlink(missing_ok=True)
    return True
