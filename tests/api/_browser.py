"""Browser-test fixtures: the app served by uvicorn on a free port, and Debian's Chromium driven by Playwright.

Import the fixtures into a test module (``from _browser import browser, live_server  # noqa: F401``). Set
``ROOMSCAN_SCREENSHOTS=/tmp/shots`` to keep a PNG of each page the tests look at (``shot``).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from roomscan.api import create_app
from roomscan.services import Services, open_services

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@dataclass(frozen=True)
class Live:
    url: str
    services: Services


def chromium_path() -> str | None:
    return os.environ.get("ROOMSCAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def live_server(settings, api_detector) -> Iterator[Live]:
    """The whole app, detection worker thread included, on 127.0.0.1."""
    services = open_services(settings, detector=api_detector)
    app = create_app(services=services, start_worker=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield Live(f"http://127.0.0.1:{port}", services)
    server.should_exit = True
    thread.join(timeout=30)


# One Chromium for the whole session, shared by every module that imports the fixture: a fixture imported into two
# modules is two fixtures to pytest, and Playwright's sync API cannot run twice at once in one thread.
_shared: dict[str, Any] = {"users": 0}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    chromium = chromium_path()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (scripts/setup.sh --test installs Debian's chromium)")
        pytest.skip("no Chromium on this machine: apt-get install chromium")
    if not _shared["users"]:
        from playwright.sync_api import sync_playwright

        _shared["playwright"] = sync_playwright().start()
        _shared["browser"] = _shared["playwright"].chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
    _shared["users"] += 1
    yield _shared["browser"]
    _shared["users"] -= 1
    if not _shared["users"]:
        _shared.pop("browser").close()
        _shared.pop("playwright").stop()


def wait_processed(live: Live, listing_id: int, timeout: float = 60) -> None:
    """Wait until the worker has analysed every photo of the listing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{live.url}/api/v1/listings/{listing_id}/amenities").json()
        if body["processing"]["state"] == "complete":
            return
        time.sleep(0.2)
    raise AssertionError(f"listing {listing_id} still processing after {timeout} s")


def no_sideways_scroll(page: Any) -> None:
    """The page fits its viewport's width: nothing scrolls sideways."""
    width = page.viewport_size["width"]
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll} px wide at a {width} px viewport"


def shot(page: Any, name: str) -> None:
    """Keep a full-page screenshot when ``ROOMSCAN_SCREENSHOTS`` names a folder (to look at, not compared)."""
    folder = os.environ.get("ROOMSCAN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}-{page.viewport_size['width']}.png"), full_page=True)


def sign_in(page: Any, live: Live, key: str, then: str = "/") -> None:
    """Sign the browser page in through ``/signin`` as a person does; it lands on ``then``."""
    page.goto(f"{live.url}/signin?next={then}")
    page.fill("#signin-form input[name=api_key]", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(f"{live.url}{then}*")


def drop_files(page, selector: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drop files on an element as a person dragging them from their desktop would."""
    payload = [(name, base64.b64encode(data).decode(), kind) for name, data, kind in files]
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const [name, b64, type] of files) {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, { type }));
            }
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})
