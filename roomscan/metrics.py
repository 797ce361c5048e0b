"""Prometheus metrics of one process (a server or a ``roomscan worker --watch``), in its own registry.

What is measured:

- ``roomscan_http_request_duration_seconds{route, method, status}``: request latency by route template
  (``/api/v1/listings/{listing_id}``, never the raw path) and status class (``2xx``...); ``roomscan.api.metrics``
  observes it.
- ``roomscan_http_errors_total{status, kind}``: answers of 400 and more by status class and kind: the roomscan error
  class (``NotFoundError``, ``ImageError``...), ``database_unavailable``, ``database_busy``, ``validation``,
  ``http`` (an HTTP error such as an unknown path), ``unhandled`` (a bug), or ``response`` (a route or guard
  answered so itself: a busy server, ``/readyz``).
- ``roomscan_queue_jobs{state}``: detection jobs of the model in use by state, read from the catalog when scraped
  (so right whichever machines the workers run on), at most once per ``ttl`` seconds; ``roomscan_catalog_up`` is
  0 (and the queue gauges absent) while the catalog cannot be read.
- ``roomscan_job_latency_seconds``: from a job's creation (the upload) to its detections stored, observed by the
  worker in this process; ``roomscan_photos_processed_total{outcome}``: ``done``, ``failed`` or ``retried``.

Example:
    >>> metrics = Metrics()
    >>> worker = services.new_worker(on_settle=metrics.observe_job)           # doctest: +SKIP
    >>> metrics.watch_queue(services.sessions, services.model_id)            # doctest: +SKIP
    >>> metrics.serve(9100)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

__all__ = ["OUTCOMES", "Metrics", "QueueCollector"]

OUTCOMES = ("done", "failed", "retried")
"""How a worker settles a job (``WorkerStats`` fields): stored, failed for good, or pending again."""

# Seconds. Requests: a health check (ms) to an upload of several photos (s).
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Seconds. Jobs: a photo detected at once on a GPU to a backlog worked off over hours.
_JOB_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


class Metrics:
    """The metrics of one process, in a registry of its own (never prometheus_client's global one), so several
    apps in one process (tests) do not collide.

    Args:
        registry: where to register; default a new one.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.request_duration = Histogram(
            "roomscan_http_request_duration_seconds",
            "HTTP request latency by route template, method and status class.",
            ["route", "method", "status"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "roomscan_http_errors",
            "HTTP answers of 400 or more, by status class and kind (a roomscan error class, database_unavailable, "
            "database_busy, validation, http, unhandled, response).",
            ["status", "kind"],
            registry=self.registry,
        )
        self.job_latency = Histogram(
            "roomscan_job_latency_seconds",
            "Time from a detection job's creation to its result stored, for jobs this process's worker completed.",
            buckets=_JOB_BUCKETS,
            registry=self.registry,
        )
        self.photos = Counter(
            "roomscan_photos_processed",
            "Photos this process's worker settled, by outcome: done, failed (for good) or retried.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.photos.labels(outcome)  # present at 0 from the start: rate() needs a first sample
        self._queue: QueueCollector | None = None

    def observe_job(self, outcome: str, created_at: datetime | None = None) -> None:
        """A worker settled a job (``DetectionWorker(on_settle=...)``): count it, and for ``done`` observe the time
        since ``created_at`` (naive times are UTC, as SQLite returns them)."""
        self.photos.labels(outcome).inc()
        if outcome == "done" and created_at is not None:
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=UTC)
            self.job_latency.observe(max(0.0, (datetime.now(UTC) - created_at).total_seconds()))

    def watch_queue(self, sessions: sessionmaker[Session], model_id: int | None, *, ttl: float = 2.0) -> None:
        """Report the catalog's queue depth (``model_id``'s jobs; all models' when None), read when scraped and
        kept ``ttl`` seconds. Calling it again replaces the previous catalog."""
        if self._queue is not None:
            self.registry.unregister(self._queue)
        self._queue = QueueCollector(sessions, model_id, ttl=ttl)
        self.registry.register(self._queue)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (may read the catalog: call it off the event loop)."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``port`` from a daemon thread (for ``roomscan worker --watch``)."""
        from prometheus_client import start_http_server

        start_http_server(port, addr=addr, registry=self.registry)


class QueueCollector(Collector):
    """``roomscan_catalog_up`` and ``roomscan_queue_jobs{state}`` from ``jobs.counts``, cached ``ttl`` seconds (one
    catalog query per ``ttl`` however many scrapers); a failed read is cached too, so a catalog that is down is not
    hammered, and the scrape still answers."""

    def __init__(self, sessions: sessionmaker[Session], model_id: int | None, *, ttl: float = 2.0) -> None:
        self.sessions = sessions
        self.model_id = model_id
        self.ttl = ttl
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._counts: dict[str, int] | None = None

    def _read(self) -> dict[str, int] | None:
        from roomscan.catalog import jobs

        with self._lock:  # concurrent scrapes wait for the one read in progress
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    with self.sessions() as session:
                        found = jobs.counts(session, self.model_id)
                    self._counts = {str(state): n for state, n in found.items()}
                except Exception as exc:  # noqa: BLE001 - any failure means "catalog down" for this scrape
                    log.warning("metrics: cannot read the job queue: %s", " ".join(str(exc).split())[:200])
                    self._counts = None
                self._read_at = time.monotonic()
            return self._counts

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("roomscan_catalog_up", "")
        yield GaugeMetricFamily("roomscan_queue_jobs", "", labels=["state"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._read()
        yield GaugeMetricFamily(
            "roomscan_catalog_up", "1 when the catalog answered the last queue read, 0 when it could not be reached.",
            value=0 if counts is None else 1,
        )
        if counts is not None:
            queue = GaugeMetricFamily(
                "roomscan_queue_jobs", "Detection jobs of the model in use, by state, as the catalog holds them.",
                labels=["state"],
            )
            for state, n in counts.items():
                queue.add_metric([state], n)
            yield queue
