"""The crash hook exists only when its test variable is set."""

from __future__ import annotations

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
    assert (tmp_path / "r.s.RUNNING_write").exists()
