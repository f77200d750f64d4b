"""The CHART_EXPORT worker: its lifecycle table, one module per state, its contracts and ports."""
