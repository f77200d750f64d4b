"""What each state of each worker does, one module per state, grouped by worker.

`flow_run/` holds what the two workers of flow run steps share (the document, selection, claim,
probe and finalize of a step); `llm_client/`, `chart_export/` and `backtest/` are the workers.
States reach the outside world only through ports; they import nothing from `adapters`.
"""
