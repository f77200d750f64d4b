"""Flow run steps as units of work: the document, selection, claim, probe and finalize shared by
the workers that execute steps of `flow_runs/{runId}` (SPEC §1-§5, CHART_EXPORT §1-§2, §12)."""
