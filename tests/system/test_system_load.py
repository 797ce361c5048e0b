"""A burst of concurrent uploads at a real server while two worker processes drain the queue, all on one
PostgreSQL catalog: every accepted photo is stored once, attached once, detected once, its boxes stored once;
refusals under overload are 503 with Retry-After and leave nothing behind. ``benchmarks/bench_load.py`` runs the
same at 200 uploads and prints the figures."""

from __future__ import annotations

import pytest
from _cluster import audit, latency_summary, make_listings, rss_kib, run_uploads, upload_requests

UPLOADS = 36


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_uploads_with_two_workers_are_each_stored_and_detected_once(cluster):
    # A small in-flight limit, so the burst also meets the overload refusal and retries after it.
    server = cluster.serve(ROOMSCAN_MAX_INFLIGHT="10", ROOMSCAN_THREADS="4")
    workers = [cluster.worker(f"worker{i}", batch_size=2) for i in range(2)]
    cluster.ready(server, *workers)
    listings = make_listings(server.base, 4)
    requests = upload_requests(listings, UPLOADS, duplicate_every=5)

    answers = run_uploads(server.base, requests, concurrency=UPLOADS, retries_on_503=10)
    cluster.wait_drained(timeout=90)
    rss, peak = rss_kib(server.pid)
    said = [cluster.stop(w) for w in workers]

    statuses = sorted({a.status for a in answers}, key=str)
    assert statuses == [202], ([a.error for a in answers if a.status != 202], server.tail())
    assert not any(a.refusals_without_retry_after for a in answers), "a 503 without Retry-After"
    result = audit(cluster)
    result.check(answers)
    result.check_each_job_claimed_once()
    distinct = {sha for a in answers for sha in a.shas}
    assert set(result.photos.values()) == distinct and len(result.jobs) == len(distinct)
    done_by_worker = [int(s.rsplit("stopped: ", 1)[1].split()[0]) for s in said]
    assert sum(done_by_worker) == len(distinct), said  # each worker's own count of what it finished
    lat = latency_summary(answers)
    print(f"\n{UPLOADS} uploads ({len(distinct)} distinct photos), {sum(a.refusals for a in answers)} 503s retried; "
          f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms; server RSS {rss / 1024:.0f} MiB "
          f"(peak {peak / 1024:.0f} MiB); jobs per worker {done_by_worker}")
