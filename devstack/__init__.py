"""The local stack: Firestore emulator, fake-gcs-server, a Gemini stub, functions-framework,
and Eventarc-format CloudEvents. Used by the tests, the demo and `worker-llm-client dev up`."""
