"""The crash hook exists only when its test variable is set; its markers name the pid it kills."""

from __future__ import annotations

import os
from types import SimpleNamespace

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
