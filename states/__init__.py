"""What happens in each state of an LLM_REPORT step; the lifecycle table names these modules."""
