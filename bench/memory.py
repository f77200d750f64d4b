"""Peak memory of the worst step the worker accepts: it sizes the function's memory setting.

Worst accepted step: 16 distinct chart images of 256 KB each (the per-image and per-step
limits), an OHLCV JSON of 64 KiB and 8 previous reports of 64 KiB (the JSON limits). Each run
is a fresh process handling that step in-process (production adapters, emulators, the Gemini
stub); it reports its peak RSS and the Python heap peak during the step.
"""

from __future__ import annotations

from bench.common import child_json, summary

IMAGES = 16
PREVIOUS_REPORTS = 8

CHILD = r"""
import json, resource, sys, time, tracemalloc
from bench.common import stack, in_process_worker
from devstack.example import load_example
from engine.cloudevent import Event

IMAGES, PREVIOUS = int(sys.argv[1]), int(sys.argv[2])

def json_of(size):
    filler = "x" * (size - len('{"pad":""}'))
    return json.dumps({"pad": filler}, separators=(",", ":")).encode()

with stack() as services:
    example = load_example()
    flow_run = json.loads(json.dumps(example.flow_run))
    step_id = next(s for s, step in flow_run["steps"].items() if step["stepType"] == "LLM_REPORT")
    refs = [{"gcs_uri": f"gs://artifacts-bucket/bench/previous{i}.json"} for i in range(PREVIOUS)]
    flow_run["steps"][step_id]["inputs"]["previousReports"] = refs
    db, gcs, example = services.reset_and_seed(flow_run)
    bucket = gcs.bucket("artifacts-bucket")
    for ref in refs:
        bucket.blob(ref["gcs_uri"].split("/", 3)[3]).upload_from_string(json_of(65536))
    ohlcv_uri = flow_run["steps"]["ohlcv_1M_bigquery_all_v1"]["outputs"]["gcs_uri"]
    bucket.blob(ohlcv_uri.split("/", 3)[3]).upload_from_string(json_of(65536))
    manifest_uri = flow_run["steps"]["charts_1M_default_set_v1"]["outputs"]["gcs_uri"]
    name = manifest_uri.split("/", 3)[3]
    manifest = json.loads(bucket.blob(name).download_as_bytes())
    item = manifest["items"][0]
    items = []
    for i in range(IMAGES):
        png_name = f"bench/chart{i}.png"
        bucket.blob(png_name).upload_from_string(
            b"\x89PNG\r\n\x1a\n" + bytes([i]) * (262144 - 8), content_type="image/png")
        items.append({**item, "kind": f"chart {i}", "png_gcs_uri": f"gs://artifacts-bucket/{png_name}"})
    bucket.blob(name).upload_from_string(json.dumps({**manifest, "items": items}))
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
        figures = child_json(CHILD, str(IMAGES), str(PREVIOUS_REPORTS))
        assert figures["images"] == IMAGES
        rss.append(figures["rss_mb"])
        growth.append(figures["rss_growth_mb"])
        heap.append(figures["heap_peak_mb"])
    label = f"{IMAGES} x 256 KB images, 64 KiB OHLCV, {PREVIOUS_REPORTS} x 64 KiB reports"
    for text, values in (
        (f"peak RSS of the process ({label})", rss),
        ("  RSS growth during the step", growth),
        ("  Python heap peak during the step (tracemalloc)", heap),
    ):
        print(summary(text, values, "MB"))


if __name__ == "__main__":
    main()
