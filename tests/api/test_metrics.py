"""``/metrics``: Prometheus text an operator scrapes; request latency by route template, errors by kind, the
catalog's queue, and the worker's job latency and throughput."""

from __future__ import annotations

import socket
import urllib.request

from api_helpers import HEADERS, jpeg, make_listing, upload
from prometheus_client.parser import text_string_to_metric_families

from roomscan.catalog import jobs
from roomscan.metrics import Metrics, QueueCollector


def scrape(text: str) -> dict[str, list]:
    """Samples by sample name (``roomscan_http_errors_total``...), each ``(labels, value)``."""
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    return sum(v for found, v in samples.get(name, []) if labels.items() <= found.items())


def get_metrics(client) -> dict[str, list]:
    r = client.get("/metrics")  # no API key: scrapers have none
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return scrape(r.text)


def test_metrics_follow_requests_errors_the_queue_and_the_worker(client, services):
    # Read the queue at every scrape here (the app keeps it 2 s): the test compares it with the catalog right away.
    client.app.state.metrics.watch_queue(services.sessions, services.model_id, ttl=0)
    before = get_metrics(client)
    listing_id = make_listing(client)
    assert upload(client, listing_id, ("a.jpg", jpeg(seed=1)), ("b.jpg", jpeg(seed=2))).status_code == 202

    queued = get_metrics(client)
    assert value(queued, "roomscan_catalog_up") == 1
    assert value(queued, "roomscan_queue_jobs", state="pending") == 2

    services.worker.run_until_idle()
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 200
    assert client.get("/api/v1/listings/999999").status_code == 404  # NotFoundError
    assert client.get("/no/such/page/12345").status_code == 404  # no route
    assert client.post("/api/v1/listings", json={}, headers=HEADERS).status_code == 422  # no title

    after = get_metrics(client)
    with services.sessions() as session:
        catalog = jobs.counts(session, services.model_id)
    for state, n in catalog.items():
        assert value(after, "roomscan_queue_jobs", state=str(state)) == n
    assert catalog[jobs.JobState.DONE] == 2

    assert value(after, "roomscan_photos_processed_total", outcome="done") == 2
    assert value(after, "roomscan_photos_processed_total", outcome="failed") == 0
    assert value(after, "roomscan_job_latency_seconds_count") == 2
    assert value(after, "roomscan_job_latency_seconds_sum") > 0

    duration = "roomscan_http_request_duration_seconds_count"
    item = {"route": "/api/v1/listings/{listing_id}", "method": "GET"}
    assert value(after, duration, **item, status="2xx") == value(before, duration, **item, status="2xx") + 1
    assert value(after, duration, **item, status="4xx") == value(before, duration, **item, status="4xx") + 1
    assert value(after, duration, route="/api/v1/listings", method="POST", status="2xx") == 1
    assert value(after, duration, route="unmatched", method="GET", status="4xx") == 1
    assert value(after, duration, route="/metrics", method="GET") == 2  # the scrapes before this one
    # Label values are route templates, never raw paths: no id or unknown path shows up.
    routes = {labels["route"] for labels, _ in after[duration]}
    assert not any("999999" in r or "12345" in r for r in routes), routes

    errors = "roomscan_http_errors_total"
    assert value(after, errors, status="4xx", kind="NotFoundError") == 1
    assert value(after, errors, status="4xx", kind="http") == 1
    assert value(after, errors, status="4xx", kind="validation") == 1
    assert value(after, errors, status="5xx") == 0


def test_metrics_are_not_in_the_api_schema(client):
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_each_app_has_its_own_registry(client, services):
    from fastapi.testclient import TestClient

    from roomscan.api import create_app

    with TestClient(create_app(services=services, start_worker=False)) as other:
        other.get("/healthz")
        assert value(get_metrics(other), "roomscan_http_request_duration_seconds_count", route="/healthz") == 1
    assert value(get_metrics(client), "roomscan_http_request_duration_seconds_count", route="/healthz") == 0


class _Sessions:
    """A session factory that counts the sessions opened, and fails while ``down``."""

    def __init__(self, real) -> None:
        self.real, self.opened, self.down = real, 0, False

    def __call__(self):
        self.opened += 1
        if self.down:
            raise OSError("connection refused")
        return self.real()


def test_the_queue_is_read_once_per_ttl_and_a_down_catalog_still_scrapes(services):
    sessions = _Sessions(services.sessions)
    metrics = Metrics()
    metrics.registry.register(collector := QueueCollector(sessions, services.model_id, ttl=60))
    for _ in range(3):
        samples = scrape(metrics.exposition().decode())
    assert sessions.opened == 1
    assert value(samples, "roomscan_catalog_up") == 1 and "roomscan_queue_jobs" in samples

    sessions.down, collector.ttl = True, 0
    samples = scrape(metrics.exposition().decode())
    assert value(samples, "roomscan_catalog_up") == 0
    assert "roomscan_queue_jobs" not in samples  # absent rather than a stale or zero depth
    assert value(samples, "roomscan_photos_processed_total", outcome="done") == 0  # the rest still answers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_worker_process_serves_the_same_metrics_on_its_port(services):
    """What ``roomscan worker --watch --metrics-port N`` does: its own registry on its own port."""
    metrics = Metrics()
    metrics.watch_queue(services.sessions, services.model_id)
    metrics.observe_job("done", None)
    metrics.observe_job("retried")
    port = _free_port()
    metrics.serve(port, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        samples = scrape(r.read().decode())
    assert value(samples, "roomscan_photos_processed_total", outcome="done") == 1
    assert value(samples, "roomscan_photos_processed_total", outcome="retried") == 1
    assert value(samples, "roomscan_catalog_up") == 1


def test_metrics_port_needs_watch():
    from typer.testing import CliRunner

    from roomscan.cli import app
    from roomscan.errors import RoomscanError

    result = CliRunner().invoke(app, ["worker", "--metrics-port", "9109"])
    # roomscan's main() prints a RoomscanError's message and exits 2; here it surfaces as the exception.
    assert isinstance(result.exception, RoomscanError) and "--watch" in str(result.exception)


def test_a_database_outage_is_counted_and_the_scrape_still_answers(services):
    """The catalog is unreachable: requests answer 503 (counted as database_unavailable) and /metrics still
    answers, with roomscan_catalog_up 0 and no queue gauges."""
    import dataclasses

    from fastapi.testclient import TestClient

    from roomscan.api import create_app
    from roomscan.catalog.db import make_engine, session_factory

    dead = make_engine("postgresql://roomscan@127.0.0.1:9/roomscan", pool_timeout=2.0)
    broken = dataclasses.replace(services, sessions=session_factory(dead))
    try:
        with TestClient(create_app(services=broken, start_worker=False), raise_server_exceptions=False) as client:
            assert client.get("/api/v1/listings").status_code == 503
            samples = get_metrics(client)
    finally:
        dead.dispose()
    assert value(samples, "roomscan_http_errors_total", status="5xx", kind="database_unavailable") == 1
    assert value(samples, "roomscan_catalog_up") == 0
    assert "roomscan_queue_jobs" not in samples
