"""Shared setup: the local services, a seeded world, an in-process worker, statistics."""

from __future__ import annotations

import io
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.example import load_example, seed
from devstack.gemini_stub import GeminiStub, ok
from devstack.services import FakeGcs, FirestoreEmulator

PROJECT = "demo-tda"
REPORT = '{"summary": {"markdown": "bench"}, "details": {"k": 1}}'


@dataclass
class Stack:
    firestore: FirestoreEmulator
    gcs: FakeGcs
    gemini: GeminiStub
    logs: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "STORAGE_EMULATOR_HOST": self.gcs.endpoint,
            "GOOGLE_GEMINI_BASE_URL": self.gemini.base_url,
            "GCP_PROJECT": PROJECT,
            "GEMINI_API_KEY": "bench-key-not-a-secret",
            "ARTIFACTS_BUCKET": "artifacts-bucket",
        }

    def clients(self) -> tuple[Any, Any]:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore, storage  # type: ignore[attr-defined]

        os.environ.update(self.env)
        return (
            firestore.Client(project=PROJECT),
            storage.Client(project=PROJECT, credentials=AnonymousCredentials()),  # type: ignore[no-untyped-call]
        )

    def reset_and_seed(self, flow_run: dict[str, Any] | None = None) -> tuple[Any, Any, Any]:
        self.firestore.reset()
        self.gcs.reset()
        db, gcs = self.clients()
        example = load_example()
        if flow_run is not None:
            example = type(example)(
                example.root, flow_run, example.prompts, example.schemas, example.objects
            )
        seed(example, db, gcs)
        return db, gcs, example


@contextmanager
def stack() -> Iterator[Stack]:
    with ExitStack() as stop, tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        firestore = stop.enter_context(FirestoreEmulator(project=PROJECT, log_dir=logs))
        gcs = stop.enter_context(FakeGcs(log_dir=logs))
        gemini = stop.enter_context(GeminiStub())
        gemini.set_default(ok(REPORT))
        yield Stack(firestore, gcs, gemini, logs)


def in_process_worker(stack: Stack, db: Any, gcs: Any, **overrides: Any) -> Any:
    """The LLM worker built by the composition root in this process, on the production
    adapters (given the bench's own clients) unless overridden; the Gemini adapter reaches
    the stub."""
    import compose
    from adapters.firestore import FirestoreDocumentStore, FirestoreRegistry
    from adapters.gcs import GcsBlobStore
    from adapters.registries import PromptSchemaRegistry

    ports: dict[str, Any] = {
        "store": FirestoreDocumentStore(None, "(default)", given=db),
        "registry": PromptSchemaRegistry(
            FirestoreRegistry(None, "(default)", given=db), "llm_prompts", "llm_schemas"
        ),
        "blobs": GcsBlobStore(given=gcs),
    }
    os.environ.update(stack.env)  # the Gemini SDK reads GOOGLE_GEMINI_BASE_URL
    return compose.build("llm_client", stack.env, stream=io.StringIO(), **{**ports, **overrides})


def summary(label: str, measured: list[float], unit: str = "ms") -> str:
    values = sorted(measured)
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return (
        f"{label}: median {statistics.median(values):.1f} {unit}, p90 {p90:.1f} {unit}, "
        f"min {values[0]:.1f} {unit}, max {values[-1]:.1f} {unit}, "
        f"stdev {spread:.1f} {unit}, n={len(values)}"
    )


def child_json(
    script: str, *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `script` in a fresh interpreter (nothing of this process's imports or heap carries
    over) and return the JSON object its last line of output prints."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", script, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# A fresh interpreter's view of a cold start: the runtime imports functions-framework, then our
# module; one event is handled. argv: function name, CloudEvent attributes, body file, heavy
# module prefixes. Prints milliseconds and which heavy modules the event loaded.
_COLD_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import functions_framework  # imported by the runtime before our module
t1 = time.perf_counter()
import entry
t2 = time.perf_counter()
from cloudevents.http import CloudEvent
event = CloudEvent(json.loads(sys.argv[2]), open(sys.argv[3], "rb").read())
t3 = time.perf_counter()
getattr(entry, sys.argv[1])(event)
t4 = time.perf_counter()
heavy = json.loads(sys.argv[4])
loaded = sorted(h for h in heavy if any(n.startswith(h) for n in sys.modules))
ms = lambda seconds: seconds * 1000
print(json.dumps({"framework": ms(t1 - t0), "import": ms(t2 - t1), "event": ms(t4 - t3),
                  "loaded": loaded}))
"""


def cold_probe(
    function: str,
    event: tuple[dict[str, str], bytes],
    env: dict[str, str],
    heavy: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One fresh process handing `entry.<function>` one event: milliseconds for importing
    functions-framework (`framework`, the runtime's), `entry.py` (`import`) and the event
    (`event`), and which of the `heavy` prefixes some loaded module name starts with
    (`loaded`: `grpc` also stands for `grpc_status`)."""
    import json

    from devstack import REPO_ROOT

    headers, body = event
    attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    base = {"PATH": "/usr/bin:/bin", "GCP_PROJECT": PROJECT, "LOG_LEVEL": "ERROR"}
    with tempfile.NamedTemporaryFile(suffix=".pb") as tmp:
        Path(tmp.name).write_bytes(body)
        argv = [function, json.dumps(attrs), tmp.name, json.dumps(list(heavy))]
        return child_json(_COLD_PROBE, *argv, cwd=REPO_ROOT, env={**base, **env})
