"""Racing reservers, in threads of this process or in separate OS processes.

Kept apart from the test module so a spawned process imports only this and the store, not
pytest's fixtures; every reserver gets its own client and store, as separate instances would.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.cloud import firestore

from adapters.chart_usage import FirestoreUsageStore
from states.chart_export.usage import Reservation

COLLECTION = "chart_img_accounts_usage"


def race(
    project: str,
    account_id: str,
    reservers: int,
    limit: int,
    plan_max: int,
    now: datetime,
    ready: Callable[[], object] = lambda: None,
) -> list[Reservation]:
    """`reservers` threads, released together, each reserving once on `account_id`.
    `ready` is called once the clients exist, just before the threads are released."""
    clients = [firestore.Client(project=project) for _ in range(reservers)]
    stores = [
        FirestoreUsageStore(None, "(default)", COLLECTION, limit, plan_max, given=c)
        for c in clients
    ]
    for c in clients:  # open every channel first, or connecting would stagger the racers
        c.collection(COLLECTION).document(f"{account_id}-warm-up").get()
    ready()
    start = threading.Barrier(reservers)
    results: list[Reservation | None] = [None] * reservers

    def reserve(i: int) -> None:
        start.wait()
        results[i] = stores[i].reserve(account_id, None, now)

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(reservers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    done = [r for r in results if r is not None]
    assert len(done) == reservers, "a reserver raised"
    return done


def race_in_process(
    emulator_host: str,
    project: str,
    account_id: str,
    reservers: int,
    limit: int,
    plan_max: int,
    now: datetime,
    start: Any,
    out: Any,
) -> None:
    """Entry point of one spawned process: waits on the cross-process `start` barrier, races,
    and puts its results (or the error's type name) on the `out` queue."""
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator_host
    try:
        out.put(race(project, account_id, reservers, limit, plan_max, now, start.wait))
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put(type(exc).__name__)
