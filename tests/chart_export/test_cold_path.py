"""A cold instance of the chart function that only sees a no-op pays for nothing else: the
LLM worker's modules, the Google client libraries, httpx2 and jsonschema stay unloaded."""

from __future__ import annotations

from bench.chart_cold_start import probe


def test_a_no_op_loads_no_heavy_module():
    assert probe()["heavy"] == []
