"""The job queue's own cost on PostgreSQL: worker processes doing nothing but queue work, no model.

Each worker process runs the worker's queue cycle with a no-op detection: ``JobQueue.claim(batch)``, then per job
one transaction that completes it (``JobQueue.complete``, conditional on the claim's attempt) and stores its
(empty) detections (``store.save_detections``), as ``DetectionWorker`` does, without the roll-up refresh. For 1,
2 and 4 processes over the same number of fresh jobs it prints jobs/s, the queue's overhead per job (a worker's
busy time per job it finished), and checks that every job was completed exactly once: each process reports the
jobs whose completion committed, and the catalog must hold them all done, each claimed once (attempts = 1).

    export ROOMSCAN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
    .venv/bin/python benchmarks/bench_queue.py                        # 3000 jobs, 1/2/4 processes, batch 4
    .venv/bin/python benchmarks/bench_queue.py --jobs 10000 --workers 1 2 4 8 --batch-size 16

A fresh database ``roomscan_bench_queue_<random>`` is created on the server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # _databases

# One worker process: waits for the start time, drains the queue, prints what it completed as JSON.
_WORKER = r"""
import json, sys, time

import numpy as np

from roomscan.catalog import store
from roomscan.catalog.db import make_engine, session_factory
from roomscan.catalog.jobs import JobQueue
from roomscan.detection.core import make_detections

url, model_id, batch, start_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
engine = make_engine(url, pool_size=2)
Session = session_factory(engine)
queue = JobQueue(Session, model_id)
empty = make_detections(np.zeros((0, 4), np.float32), [], [], [])
with engine.connect():  # connect before the start, as a running worker is connected
    pass
late = time.time() - start_at
time.sleep(max(0.0, -late))
began = time.perf_counter()
done, lost, claims = [], [], 0
while batch_claims := queue.claim(batch):
    claims += 1
    for claim in batch_claims:
        with Session.begin() as session:
            if queue.complete(session, claim):
                store.save_detections(session, claim.photo_id, model_id, empty)
                ok = True
            else:
                ok = False
        (done if ok else lost).append(claim.job_id)
busy = time.perf_counter() - began
print(json.dumps({"done": done, "lost": lost, "claims": claims, "busy": busy, "ended": time.time(),
                  "late": max(0.0, late)}))
"""


def fresh_database(server: str):  # type: ignore[no-untyped-def]
    from _databases import postgres_database

    return postgres_database(server, "roomscan_bench_queue")


def seed(Session, n: int) -> int:  # type: ignore[no-untyped-def]
    """``n`` photos on one listing and a model; returns the model id."""
    from roomscan.catalog.models import Listing, ListingPhoto, Model, Photo

    with Session.begin() as session:
        model = Model(key="bench@1", backend="none", name="no-op", version="1", taxonomy="t")
        listing = Listing(title="bench")
        session.add_all([model, listing])
        session.flush()
        session.execute(insert(Photo), [
            {"sha256": f"{i:064x}", "format": "JPEG", "width": 1, "height": 1, "size_bytes": 1} for i in range(n)
        ])
        ids = session.scalars(select(Photo.id).order_by(Photo.id)).all()
        session.execute(insert(ListingPhoto), [
            {"listing_id": listing.id, "photo_id": pid, "position": i} for i, pid in enumerate(ids)
        ])
        return model.id


def run(url: str, Session, model_id: int, n: int, workers: int, batch: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Queue ``n`` fresh jobs and drain them with ``workers`` processes; returns the figures and checks."""
    from roomscan.catalog import jobs
    from roomscan.catalog.models import Detection, PhotoJob

    with Session.begin() as session:
        session.execute(delete(Detection))
        session.execute(delete(PhotoJob))
        assert jobs.enqueue_missing(session, model_id) == n
    start_at = time.time() + 6.0  # every process imported and connected by then (else "late" says so)
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, url, str(model_id), str(batch), str(start_at)],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        assert proc.returncode == 0, f"a worker process failed ({proc.returncode})"
        reports.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["ended"] for r in reports) - start_at
    completed = Counter(job for r in reports for job in r["done"])
    with Session() as session:
        states = Counter(dict(session.execute(select(PhotoJob.state, func.count()).group_by(PhotoJob.state)).all()))
        attempts = Counter(dict(session.execute(
            select(PhotoJob.attempts, func.count()).group_by(PhotoJob.attempts)).all()))
        job_ids = set(session.scalars(select(PhotoJob.id)))
    return {
        "workers": workers,
        "jobs_per_s": n / wall,
        "ms_per_job": 1000 * sum(r["busy"] for r in reports) / n,  # a worker's busy time per job
        "wall_s": wall,
        "per_worker": [len(r["done"]) for r in reports],
        "claims": sum(r["claims"] for r in reports),
        "none_twice": all(c == 1 for c in completed.values()),
        "all_once": set(completed) == job_ids and states == Counter({"done": n}) and attempts == Counter({1: n}),
        "lost": sum(len(r["lost"]) for r in reports),
        "late_s": max(r["late"] for r in reports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("ROOMSCAN_TEST_POSTGRES_URL"),
                        help="PostgreSQL server (default $ROOMSCAN_TEST_POSTGRES_URL; scripts/postgres.sh start)")
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-size", type=int, default=4, help="jobs per claim (roomscan worker's default: 4)")
    args = parser.parse_args()
    if not args.postgres_url:
        sys.exit('give --postgres-url or export ROOMSCAN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"')

    from roomscan.catalog.db import open_catalog

    print(f"queue only (claim, complete + empty detections), {args.jobs} jobs, batch {args.batch_size}, "
          f"PostgreSQL {make_url(args.postgres_url).render_as_string(hide_password=True)}, {os.cpu_count()} CPUs")
    rows = []
    with fresh_database(args.postgres_url) as url:
        engine, Session = open_catalog(url)
        try:
            model_id = seed(Session, args.jobs)
            for workers in args.workers:
                rows.append(run(url, Session, model_id, args.jobs, workers, args.batch_size))
        finally:
            engine.dispose()
    print(f"{'workers':>7} {'jobs/s':>8} {'ms/job':>7} {'wall s':>7} {'claims':>7}  {'jobs per worker':<24} check")
    for r in rows:
        ok = r["none_twice"] and r["all_once"] and not r["lost"]
        check = "each job completed once" if ok else (
            f"FAILED: twice={not r['none_twice']} all_once={r['all_once']} lost={r['lost']}")
        print(f"{r['workers']:>7} {r['jobs_per_s']:>8.0f} {r['ms_per_job']:>7.2f} {r['wall_s']:>7.1f} "
              f"{r['claims']:>7}  {r['per_worker']!s:<24} {check}"
              + (f" (a process started {r['late_s']:.1f} s late)" if r["late_s"] > 0 else ""))
    if not all(r["none_twice"] and r["all_once"] and not r["lost"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
