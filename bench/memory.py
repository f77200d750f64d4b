"""Peak memory of one step with 8 chart images of 256 KB each (the per-image limit).

Each run is a fresh process handling one step in-process (production adapters, emulators,
the Gemini stub); it reports its peak RSS and the Python heap peak during the step.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.common import summary

CHILD = r"""
import json, resource, sys, time, tracemalloc
from bench.common import stack, in_process_worker
from devstack.example import load_example
from engine.runner import Event
from engine.runner import Event

with stack() as services:
    db, gcs, example = services.reset_and_seed()
    manifest_uri = example.flow_run["steps"]["charts_1M_default_set_v1"]["outputs"]["gcs_uri"]
    bucket, _, name = manifest_uri[5:].partition("/")
    manifest = json.loads(gcs.bucket(bucket).blob(name).download_as_bytes())
    item = manifest["items"][0]
    items = []
    for i in range(8):
        png_name = f"bench/chart{i}.png"
        gcs.bucket(bucket).blob(png_name).upload_from_string(
            b"\x89PNG\r\n\x1a\n" + bytes([i]) * (262144 - 8), content_type="image/png")
        items.append({**item, "kind": f"chart {i}", "png_gcs_uri": f"gs://{bucket}/{png_name}"})
    gcs.bucket(bucket).blob(name).upload_from_string(json.dumps({**manifest, "items": items}))
    worker = in_process_worker(services, db, gcs)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    outcome = worker.handle(Event("m", "google.cloud.firestore.document.v1.updated",
                                  f"documents/flow_runs/{example.run_id}"))
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert outcome.status == "ok", outcome
    images = len(services.gemini.requests[0].body["contents"][0]["parts"]) - 1
    print(json.dumps({"rss_mb": after / 1024, "rss_growth_mb": (after - before) / 1024,
                      "heap_peak_mb": heap_peak / 2**20, "images": images}))
"""


def main(runs: int = 3) -> None:
    rss, growth, heap = [], [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
        ).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        assert figures["images"] == 8
        rss.append(figures["rss_mb"])
        growth.append(figures["rss_growth_mb"])
        heap.append(figures["heap_peak_mb"])
    for label, values in (
        ("peak RSS of the process (8 x 256 KB images)", rss),
        ("  RSS growth during the step", growth),
        ("  Python heap peak during the step (tracemalloc)", heap),
    ):
        print(summary(label, values).replace(" ms", " MB"))


if __name__ == "__main__":
    main()
