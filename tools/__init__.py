"""Developer commands: the lifecycle diagram and the end-to-end demo."""
