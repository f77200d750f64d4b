"""Peak memory of the worst jobs the backtest worker accepts: it sizes the function's memory.

Worst accepted jobs: an inline job of 5000 prices (the job document and a result of two
5000-point lists), and a history job whose CSV is at `HISTORY_MAX_BYTES` (4 MiB, about 230,000
rows, every one parsed and checked) with 5000 rows in its window. Each runs in a fresh process
(production adapters on the emulators) that reports its peak RSS and the Python heap peak during
the job. `uv run python -m bench.backtest_memory`.
"""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path

from bench.common import child_json, summary

CHILD = r"""
import io, json, os, resource, sys, tempfile, tracemalloc
from pathlib import Path
from contextlib import ExitStack
from devstack.services import FakeGcs, FirestoreEmulator
from bench.backtest_job import job

kind, trace = sys.argv[1], sys.argv[2] == "trace"
with ExitStack() as stop, tempfile.TemporaryDirectory() as tmp:
    firestore = stop.enter_context(FirestoreEmulator(project="demo-tda", log_dir=Path(tmp)))
    gcs_server = stop.enter_context(FakeGcs(log_dir=Path(tmp)))
    os.environ.update(FIRESTORE_EMULATOR_HOST=firestore.host,
                      STORAGE_EMULATOR_HOST=gcs_server.endpoint, GCP_PROJECT="demo-tda")
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore as gcf, storage
    import compose
    from adapters.firestore import FirestoreDocumentStore
    from adapters.gcs import GcsBlobStore
    from engine.cloudevent import Event
    db = gcf.Client(project="demo-tda")
    gcs = storage.Client(project="demo-tda", credentials=AnonymousCredentials())
    bucket = gcs.create_bucket("history-bucket")
    document = job("mem", 5000, "inline" if kind == "inline" else "history")
    if kind == "history":
        bucket.blob("daily/BENCH.csv").upload_from_filename(sys.argv[3])
        document["configUsed"]["startDate"] = sys.argv[4]
        document["configUsed"]["endDate"] = sys.argv[5]
    db.collection("backtestJobs").document("mem").set(document)
    worker = compose.build("backtest", {"HISTORY_BUCKET": "history-bucket"}, stream=io.StringIO(),
                           store=FirestoreDocumentStore(None, "(default)", given=db),
                           history=GcsBlobStore(given=gcs))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    outcome = worker.handle(Event("m", "google.cloud.firestore.document.v1.created",
                                  "documents/backtestJobs/mem"))
    heap = tracemalloc.get_traced_memory()[1] if trace else 0
    assert outcome.status == "ok", outcome
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rss_mb": peak / 1024, "before_mb": before / 1024, "heap_mb": heap / 2**20}))
"""


def history_file(path: Path, limit: int = 4_194_304) -> tuple[str, str]:
    """A CSV of daily closes just under `limit` bytes; returns its last 5000 days' window."""
    rows, day, size = ["date,close"], datetime.date(1460, 1, 1), len("date,close\n")
    while True:
        row = f"{day.isoformat()},{100 + len(rows) % 50:.2f}"
        if size + len(row) + 1 > limit:
            break
        rows.append(row)
        size += len(row) + 1
        day += datetime.timedelta(days=1)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    last = datetime.date.fromisoformat(rows[-1].split(",")[0])
    return (last - datetime.timedelta(days=4999)).isoformat(), last.isoformat()


def child(kind: str, mode: str, history_args: list[str]) -> dict[str, float]:
    figures: dict[str, float] = child_json(CHILD, kind, mode, *history_args)
    return figures


def main(runs: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "BENCH.csv"
        window = history_file(csv)
        measure(runs, [str(csv), *window])


def measure(runs: int, history_args: list[str]) -> None:
    for kind in ("inline", "history"):
        rss, heap, before = [], [], []
        for _ in range(runs):
            # RSS without tracemalloc (its own bookkeeping doubles a many-object heap), then
            # the heap peak with it, in another fresh process.
            plain, traced = (child(kind, mode, history_args) for mode in ("rss", "trace"))
            rss.append(plain["rss_mb"])
            before.append(plain["before_mb"])
            heap.append(traced["heap_mb"])
        label = "inline 5000 prices" if kind == "inline" else "history CSV of 4 MiB, 5000 rows"
        print(summary(f"{label}: peak RSS of the process", rss, "MB"))
        print(summary("  RSS before the job (libraries, clients)", before, "MB"))
        print(summary("  Python heap peak during the job", heap, "MB"))


if __name__ == "__main__":
    main()
