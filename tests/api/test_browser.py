"""The web page in a real browser: headless Chromium (Debian's) driven by Playwright.

A host creates a listing, uploads a photo, and sees the amenity checklist appear once detection has run.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest
import uvicorn
from api_helpers import API_KEY, jpeg

from roomscan.api import build_services, create_app

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    return os.environ.get("ROOMSCAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def live_server(settings, api_detector):
    services = build_services(settings, api_detector)
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
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_host_uploads_a_photo_and_sees_the_amenity_list(live_server, tmp_path):
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (scripts/setup.sh --test installs Debian's chromium)")
        pytest.skip("no Chromium on this machine: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    photo = tmp_path / "living-room.jpg"
    photo.write_bytes(jpeg(seed=11, size=(160, 120)))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page()
        page.goto(live_server + "/")
        page.fill("input[name=title]", "Browser test loft")
        page.check("input[name=claimed][value=bed]")
        page.fill("input[name=api_key]", API_KEY)
        page.click("text=Create listing")
        expect(page.locator("h2")).to_have_text("Browser test loft")
        # The claim shows up at once, unverified: no photo yet.
        expect(page.locator("tr.amenity[data-slug=bed]")).to_have_attribute("data-status", "unverified")

        page.set_input_files("input[type=file]", str(photo))
        page.click("text=Upload")  # the key is remembered in a cookie: no field this time
        # The page refreshes itself while detection runs, then shows what the photo shows.
        expect(page.locator("#processing")).to_have_attribute("data-state", "complete", timeout=60_000)
        seen = page.locator("tr.amenity[data-status=confirmed], tr.amenity[data-status=discovered]")
        expect(seen.first).to_be_visible()
        expect(page.locator("img[alt^='photo']")).to_have_count(1)
        src = page.locator("img[alt^='photo']").get_attribute("src")
        assert page.request.get(live_server + src).headers["content-type"] == "image/jpeg"

        # Search page: tick a seen amenity and find the listing.
        slug = seen.first.get_attribute("data-slug")
        page.goto(live_server + "/search")
        page.check(f"input[name=amenity][value={slug}]")
        page.click("button[type=submit]")
        expect(page.locator("tr.hit")).to_have_count(1)
        expect(page.locator("tr.hit a")).to_have_text("Browser test loft")
        page.screenshot(path=str(tmp_path / "search.png"))
        browser.close()
