"""A cold instance of the chart function that only sees a no-op pays for nothing else: the
LLM worker's modules, the Google client libraries, httpx2 and jsonschema stay unloaded."""

from __future__ import annotations

from bench.chart_cold_start import ENV, HEAVY, noop_event
from bench.common import cold_probe


def test_a_no_op_loads_no_heavy_module():
    result = cold_probe("on_chart_export_flow_run_updated", noop_event(), ENV, HEAVY)
    assert result["loaded"] == []


def test_the_probe_sees_a_heavy_module_when_one_is_loaded():
    """The check above could fail: the same probe reports what an event did load."""
    result = cold_probe("on_chart_export_flow_run_updated", noop_event(), ENV, ("entry", "json"))
    assert result["loaded"] == ["entry", "json"]
