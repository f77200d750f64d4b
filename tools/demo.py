"""End-to-end demo: one LLM_REPORT step against local emulators and a Gemini stub.

Starts the Firestore emulator, fake-gcs-server, a scripted Gemini stub and the function under
functions-framework; seeds the contract's READY flow run with its prompt, schema, OHLCV and two
chart PNGs; delivers one Eventarc-format CloudEvent; prints the step's final state and the
artifact path; stops everything it started. Usage: `uv run python -m tools.demo`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from google.auth.credentials import AnonymousCredentials


def main() -> int:
    from google.cloud import firestore, storage  # type: ignore[attr-defined]

    from devstack.cloudevents import firestore_update_event
    from devstack.gemini_stub import GeminiStub, ok
    from devstack.services import FakeGcs, FirestoreEmulator, FunctionServer, post_event
    from tests import scenario

    project = "demo-tda"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        print("starting Firestore emulator, fake-gcs-server and the Gemini stub ...")
        emulator = stack.enter_context(FirestoreEmulator(project=project, log_dir=logs))
        gcs_server = stack.enter_context(FakeGcs(log_dir=logs))
        gemini = stack.enter_context(GeminiStub())
        gemini.script(ok(scenario.report_text()))
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        os.environ["STORAGE_EMULATOR_HOST"] = gcs_server.endpoint
        db = firestore.Client(project=project)
        gcs = storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
        doc = scenario.seed(db, gcs)
        print(f"seeded flow_runs/{scenario.RUN_ID} with READY step {scenario.STEP}")

        function = stack.enter_context(
            FunctionServer(
                env={
                    "FIRESTORE_EMULATOR_HOST": emulator.host,
                    "STORAGE_EMULATOR_HOST": gcs_server.endpoint,
                    "GOOGLE_GEMINI_BASE_URL": gemini.base_url,
                    "GCP_PROJECT": project,
                    "GEMINI_API_KEY": "demo-key-not-a-secret",
                    "ARTIFACTS_BUCKET": scenario.BUCKET,
                },
                log_dir=logs,
            )
        )
        headers, body = firestore_update_event(
            project=project, run_id=scenario.RUN_ID, document=doc
        )
        status = post_event(function.url, headers, body)
        print(f"delivered google.cloud.firestore.document.v1.updated -> HTTP {status}")

        step = scenario.step_of(db)
        print(f"step {scenario.STEP}: {step['status']}")
        if step.get("error"):
            print(f"error: {json.dumps(step['error'])}")
        uri = step.get("outputs", {}).get("gcs_uri")
        print(f"artifact: {uri}")
        if uri:
            report = json.loads(scenario.objects(gcs)[uri])
            print(f"summary: {report['output']['summary']['markdown']}")
        print(f"gemini requests: {len(gemini.requests)}")
        return 0 if step["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
