"""A burst of uploads at a real server (uvicorn on loopback): every request is answered, accepted or refused with
503 and Retry-After, while /healthz keeps answering; what was accepted is stored, whole."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from api_helpers import API_KEY, jpeg
from sqlalchemy import func, select

from roomscan.api import create_app
from roomscan.catalog.models import ListingPhoto, Photo, PhotoJob
from roomscan.services import open_services

UPLOADS = 200


@pytest.fixture
def small_server(settings, api_detector) -> Iterator[tuple[str, object]]:
    """The app with a small thread pool and in-flight limit, so 200 uploads saturate it; no worker thread."""
    tight = dataclasses.replace(settings, threads=4, db_pool_size=6, db_pool_timeout=5.0, max_inflight=24)
    services = open_services(tight, detector=api_detector)
    app = create_app(services=services, start_worker=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", backlog=1024))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", services
    server.should_exit = True
    thread.join(timeout=30)


async def _burst(base: str) -> tuple[list[httpx.Response], list[float]]:
    photos = [jpeg(seed=1000 + i, size=(48, 32)) for i in range(UPLOADS)]
    limits = httpx.Limits(max_connections=UPLOADS + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        r = await client.post("/api/v1/listings", json={"title": "Burst", "claimed_amenities": []},
                              headers={"X-API-Key": API_KEY})
        listing = r.json()["id"]
        health_latencies: list[float] = []
        done = asyncio.Event()

        async def watch_health() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=10) as probe:
                while not done.is_set():
                    start = time.monotonic()
                    answer = await probe.get("/healthz")  # a timeout here fails the test
                    assert answer.status_code == 200
                    health_latencies.append(time.monotonic() - start)
                    await asyncio.sleep(0.05)

        async def one(i: int) -> httpx.Response:
            return await client.post(
                f"/api/v1/listings/{listing}/photos",
                files=[("files", (f"p{i}.jpg", photos[i], "image/jpeg"))],
                headers={"X-API-Key": API_KEY},
            )

        watcher = asyncio.create_task(watch_health())
        answers = await asyncio.gather(*(one(i) for i in range(UPLOADS)))
        done.set()
        await watcher
    return answers, health_latencies


def test_a_burst_of_uploads_is_answered_and_health_stays_up(small_server):
    base, services = small_server
    # A thread of its own: in the full suite, Playwright's sync API already runs an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        answers, health = pool.submit(asyncio.run, _burst(base)).result()
    codes = [a.status_code for a in answers]
    assert set(codes) <= {202, 503}, sorted(set(codes))
    accepted = [a for a in answers if a.status_code == 202]
    busy = [a for a in answers if a.status_code == 503]
    assert accepted, "a saturated server still accepts what it can"
    assert all(a.headers.get("retry-after") for a in busy), "a refusal says when to come back"
    assert all("busy" in a.json()["detail"] for a in busy)
    assert health, "/healthz was polled throughout the burst"
    # Everything accepted is stored whole, nothing refused left a trace.
    with services.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ListingPhoto)) == len(accepted)
        assert session.scalar(select(func.count()).select_from(Photo)) == len(accepted)
        assert session.scalar(select(func.count()).select_from(PhotoJob)) == len(accepted)
