"""The local stack: Firestore emulator, fake-gcs-server, a Gemini stub, functions-framework,
and Eventarc-format CloudEvents. Used by the tests, the demo and `worker-llm-client dev up`."""

from pathlib import Path

# The repository's root, for every tool, test and bench that needs a path in it: examples,
# contracts, deploy scripts, the source functions-framework serves.
REPO_ROOT = Path(__file__).resolve().parents[1]
