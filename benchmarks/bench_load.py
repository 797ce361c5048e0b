"""Uploads under load with real processes on PostgreSQL: latency, throughput, server memory, and proof that
nothing accepted was lost, doubled or detected twice.

Starts ``roomscan serve --no-worker`` (uvicorn on a free loopback port, an API key set) and ``--workers``
``roomscan worker --watch`` processes on one fresh PostgreSQL database and photo store, with the tiny OWLv2 test
model (the queue and the server are measured, not the model). Then ``--uploads`` single-photo uploads are sent
at once (httpx async, all concurrent) over ``--listings`` listings; every 5th repeats earlier bytes, to another
listing or to the same one. A 503 (the server's in-flight limit) must carry Retry-After and is retried after it.
When the queue has drained it prints:

* upload latency p50/p99 of the accepted answers, the 503s, upload throughput (accepted uploads per second of
  the burst) and processing throughput (photos detected per second, first upload to drained queue);
* the server's resident memory (VmRSS) before and after, and its peak (VmHWM);
* the correctness checks of ``tests/system/_cluster.py``: each distinct photo one row and one file, attached
  once per listing, one job, done, claimed once, completed once (committed completions counted in every
  process), its boxes stored once; no litter in the photo store.

    export ROOMSCAN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
    .venv/bin/python benchmarks/bench_load.py                         # 200 concurrent uploads, 2 workers
    .venv/bin/python benchmarks/bench_load.py --uploads 500 --workers 4 --max-inflight 32
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "system")]


def fresh_database(server: str):  # type: ignore[no-untyped-def]
    from _databases import postgres_database

    return postgres_database(server, "roomscan_bench_load")


def _check(name: str, ok: bool, failures: list[str]) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if not ok:
        failures.append(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("ROOMSCAN_TEST_POSTGRES_URL"),
                        help="PostgreSQL server (default $ROOMSCAN_TEST_POSTGRES_URL; scripts/postgres.sh start)")
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=0, help="uploads in flight at once (default: all)")
    parser.add_argument("--listings", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4, help="the workers' --batch-size")
    parser.add_argument("--max-inflight", type=int, default=0, help="ROOMSCAN_MAX_INFLIGHT (default: the server's, 64)")
    parser.add_argument("--photo-size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    args = parser.parse_args()
    if not args.postgres_url:
        sys.exit('give --postgres-url or export ROOMSCAN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"')
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from _cluster import Cluster, audit, latency_summary, make_listings, rss_kib, run_uploads, upload_requests
    from _models import build_tiny_owlv2, tiny_taxonomy

    with tempfile.TemporaryDirectory(prefix="roomscan-bench-load-") as tmp, fresh_database(args.postgres_url) as url:
        work = Path(tmp)
        model_dir = build_tiny_owlv2(work / "model")
        taxonomy = work / "taxonomy.yaml"
        tiny_taxonomy().save(taxonomy)
        env = {"ROOMSCAN_MAX_INFLIGHT": str(args.max_inflight)} if args.max_inflight else {}
        cluster = Cluster(work / "run", url, model_dir, taxonomy)
        try:
            server = cluster.serve(**env)
            workers = [cluster.worker(f"worker{i}", batch_size=args.batch_size) for i in range(args.workers)]
            cluster.ready(server, *workers)
            listings = make_listings(server.base, args.listings)
            requests = upload_requests(listings, args.uploads, size=tuple(args.photo_size), duplicate_every=5)
            rss_before, _ = rss_kib(server.pid)

            started = time.monotonic()
            answers = run_uploads(server.base, requests, concurrency=args.concurrency or args.uploads,
                                  retries_on_503=20)
            burst = time.monotonic() - started
            rss_after, rss_peak = rss_kib(server.pid)
            drain = cluster.wait_drained(timeout=600)
            total = time.monotonic() - started
            said = [cluster.stop(w) for w in workers]
        finally:
            cluster.close()
        result = audit(cluster)

    accepted = [a for a in answers if a.status and 200 <= a.status < 300]
    refused = sum(a.refusals for a in answers)
    lat = latency_summary(answers)
    distinct = {sha for a in answers for sha in a.shas}
    per_worker = [int(s.rsplit("stopped: ", 1)[1].split()[0]) if "stopped: " in s else -1 for s in said]
    print(f"{args.uploads} concurrent uploads ({len(distinct)} distinct photos) over {args.listings} listings, "
          f"server --no-worker + {args.workers} worker --watch (batch {args.batch_size}), tiny OWLv2, "
          f"PostgreSQL, {os.cpu_count()} CPUs")
    print(f"  accepted           {len(accepted)}/{args.uploads}, {refused} answers 503 (retried after Retry-After)")
    print(f"  upload latency     p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, mean {lat['mean_ms']:.0f} ms "
          f"(accepted answers); from the first try, retries included: p50 {lat['total_p50_ms']:.0f} ms, "
          f"p99 {lat['total_p99_ms']:.0f} ms")
    print(f"  upload throughput  {len(accepted) / burst:.1f} uploads/s ({burst:.1f} s for the burst)")
    print(f"  processing         {len(result.jobs) / total:.1f} photos/s end to end; queue drained {drain:.1f} s "
          f"after the burst; photos per worker {per_worker}")
    print(f"  server memory      RSS {rss_before / 1024:.0f} MiB before, {rss_after / 1024:.0f} MiB after, "
          f"peak {rss_peak / 1024:.0f} MiB")
    print("checks")
    failures: list[str] = []
    _check("every upload answered 2xx in the end; every 503 had Retry-After",
           len(accepted) == args.uploads and not any(a.refusals_without_retry_after for a in answers), failures)
    _check(f"one photos row and one file per distinct photo ({len(distinct)})",
           set(result.photos.values()) == distinct == result.files and len(result.photos) == len(distinct)
           and not result.temp_files, failures)
    try:
        result.check(answers)
        _check("each accepted photo attached once, one done job, completed once, its boxes stored once", True, failures)
    except AssertionError as exc:
        _check(f"each accepted photo attached once, one done job, completed once, boxes once: {exc}", False, failures)
    try:
        result.check_each_job_claimed_once()
        _check("no job claimed or detected twice (attempts = 1, one claim each, detector images = jobs)", True,
               failures)
    except AssertionError as exc:
        _check(f"no job claimed or detected twice: {exc}", False, failures)
    _check(f"the workers' own counts add up to the jobs ({sum(per_worker)} = {len(result.jobs)})",
           sum(per_worker) == len(result.jobs), failures)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
