"""The crash hook exists only when its test variable is set; its markers name the pid it kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import SimpleNamespace

from devstack import REPO_ROOT
from engine.faults import crash_hook


def test_no_variable_no_hook():
    assert crash_hook({}) is None
    assert crash_hook({"WORKER_TEST_CRASH_AT": " "}) is None


def test_hook_fires_once_per_marker(tmp_path, monkeypatch):
    kills = []
    monkeypatch.setattr("os.kill", lambda pid, sig: kills.append(sig))
    hook = crash_hook(
        {"WORKER_TEST_CRASH_AT": "RUNNING_write", "WORKER_TEST_CRASH_ONCE_DIR": str(tmp_path)}
    )
    assert hook is not None
    unit = SimpleNamespace(doc_id="r", unit_id="s")
    hook(unit, "RUNNING_generate")
    assert kills == []
    hook(unit, "RUNNING_write")
    hook(unit, "RUNNING_write")
    assert len(kills) == 1
    # The chaos audit matches markers to gunicorn's SIGKILL lines by this pid; the hidden file
    # the marker was linked from is gone, so the marker directory lists markers only.
    assert (tmp_path / "r.s.RUNNING_write").read_text() == str(os.getpid())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.s.RUNNING_write"]


RACE = """
import sys, threading
from types import SimpleNamespace
from engine.faults import crash_hook

env = {"WORKER_TEST_CRASH_AT": "RUNNING_write", "WORKER_TEST_CRASH_ONCE_DIR": sys.argv[1]}
hook = crash_hook(env)
gate = threading.Barrier(4)

def enter(n):
    gate.wait()
    hook(SimpleNamespace(doc_id=f"r{n}", unit_id="s"), "RUNNING_write")

threads = [threading.Thread(target=enter, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_threads_dying_in_one_kill_leave_markers_that_name_that_process(tmp_path):
    """Four threads reach armed states together: one SIGKILL ends them all. However many
    markers landed first, each names the process that died, which is what lets the chaos
    audits match markers to gunicorn's SIGKILL lines when crashes outnumber kills."""
    child = subprocess.run(
        [sys.executable, "-c", RACE, str(tmp_path)], cwd=REPO_ROOT, capture_output=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    markers = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert markers
    pids = {int(p.read_text()) for p in markers}
    assert len(pids) == 1 and pids != {os.getpid()}
