"""Chart-IMG quota reservations on the Firestore emulator (CHART_EXPORT §7).

(a) The overhead one reservation adds to an HTTP attempt when nobody competes: a read plus a
preconditioned update, and a read alone when the account is at its limit.
(b) 32 instances racing for one account whose limit is below the demand: the committed count
must be exactly the limit; latency per reservation, rounds (reads) per reservation and wall
time of the race. Every racer has its own client and store, as separate instances would.
`uv run python -m bench.chart_reservations`.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.cloud import firestore

from adapters.chart_usage import FirestoreUsageStore
from bench.common import PROJECT, summary
from devstack.services import FirestoreEmulator
from states.chart_export.usage import AtLimit, Reservation, Reserved

COLLECTION = "chart_img_accounts_usage"
PLAN_MAX = 5000  # ENTERPRISE: room for every uncontended reservation


class CountingStore(FirestoreUsageStore):
    """Counts its reads: one per round, so reads per call = rounds per reservation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0

    def _read(self, ref: Any) -> tuple[dict[str, Any] | None, datetime | None]:
        self.reads += 1
        return super()._read(ref)


def uncontended(db: Any, reservations: int, warm_up: int = 20) -> None:
    store = FirestoreUsageStore(None, "(default)", COLLECTION, PLAN_MAX, PLAN_MAX, given=db)
    now = datetime.now(UTC)
    times: list[float] = []
    for _ in range(warm_up + reservations):
        started = time.perf_counter()
        result = store.reserve("acc-solo", None, now)
        times.append((time.perf_counter() - started) * 1000)
        assert isinstance(result, Reserved)
    print(summary("uncontended reservation (read + preconditioned update)", times[warm_up:]))

    full = FirestoreUsageStore(None, "(default)", COLLECTION, 1, PLAN_MAX, given=db)
    full.reserve("acc-full", None, now)
    refused: list[float] = []
    for _ in range(warm_up + reservations):
        started = time.perf_counter()
        assert isinstance(full.reserve("acc-full", None, now), AtLimit)
        refused.append((time.perf_counter() - started) * 1000)
    print(summary("account at its limit (read only)", refused[warm_up:]))


def race(racers: int, limit: int) -> tuple[list[Reservation], list[float], float, int]:
    """One race on a missing document: results, per-racer latency, wall time, reads."""
    clients = [firestore.Client(project=PROJECT) for _ in range(racers)]
    stores = [
        CountingStore(None, "(default)", COLLECTION, limit, PLAN_MAX, given=c) for c in clients
    ]
    for c in clients:  # connect first, so the race is not staggered by channel setup
        c.collection(COLLECTION).document("warm-up").get()
    now = datetime.now(UTC)
    start = threading.Barrier(racers + 1)
    results: list[Reservation | None] = [None] * racers
    latency = [0.0] * racers

    def run(i: int) -> None:
        start.wait()
        began = time.perf_counter()
        results[i] = stores[i].reserve("acc-race", None, now)
        latency[i] = (time.perf_counter() - began) * 1000

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = (time.perf_counter() - began) * 1000
    for c in clients:
        c.close()  # type: ignore[no-untyped-call]
    done = [r for r in results if r is not None]
    assert len(done) == racers, "a racer raised"
    return done, latency, wall, sum(s.reads for s in stores)


def contended(emulator: FirestoreEmulator, rounds: int, racers: int, limit: int) -> None:
    latencies: list[float] = []
    reserved_latencies: list[float] = []
    walls: list[float] = []
    outcomes: Counter[str] = Counter()
    reads = 0
    for r in range(rounds):
        emulator.reset()
        results, latency, wall, round_reads = race(racers, limit)
        db = firestore.Client(project=PROJECT)
        stored = db.collection(COLLECTION).document("acc-race").get().to_dict() or {}
        db.close()  # type: ignore[no-untyped-call]
        numbers = sorted(x.usage_today for x in results if isinstance(x, Reserved))
        assert numbers == list(range(1, limit + 1)), f"round {r}: {numbers}"
        assert stored.get("usageToday") == limit, f"round {r}: {stored}"
        outcomes.update(type(x).__name__ for x in results)
        latencies.extend(latency)
        reserved_latencies.extend(
            t for t, x in zip(latency, results, strict=True) if isinstance(x, Reserved)
        )
        walls.append(wall)
        reads += round_reads
        print(
            f"round {r}: committed {stored.get('usageToday')} of limit {limit}, "
            f"reserved numbers 1..{numbers[-1]} each once, "
            f"{dict(Counter(type(x).__name__ for x in results))}"
        )
    print(f"outcomes over {rounds} rounds of {racers} racers: {dict(outcomes)}")
    print(f"rounds (reads) per call: {reads / (rounds * racers):.2f}")
    print(summary(f"{racers} racing reservations, latency per call (any outcome)", latencies))
    print(summary("  latency per call that ended Reserved", reserved_latencies))
    print(summary(f"  wall time until all {racers} answered", walls))


def main(reservations: int = 300, rounds: int = 10, racers: int = 32, limit: int = 10) -> None:
    with (
        tempfile.TemporaryDirectory() as logs,
        FirestoreEmulator(project=PROJECT, log_dir=Path(logs)) as emulator,
    ):
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        db = firestore.Client(project=PROJECT)
        uncontended(db, reservations)
        db.close()  # type: ignore[no-untyped-call]
        contended(emulator, rounds, racers, limit)


if __name__ == "__main__":
    main()
