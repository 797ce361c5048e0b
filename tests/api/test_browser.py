"""The web page in a real browser: headless Chromium (Debian's) driven by Playwright.

A host creates a listing, uploads a photo, and sees the amenity checklist appear once detection has run. The
other page features (evidence, photo view, upload accounts, edit/delete, decisions, search, phone width) are in
``test_browser_pages.py``.
"""

from __future__ import annotations

import pytest
from _browser import DESKTOP, browser, live_server, shot, sign_in  # noqa: F401
from api_helpers import API_KEY, jpeg

pytestmark = pytest.mark.browser


def test_host_uploads_a_photo_and_sees_the_amenity_list(live_server, browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    photo = tmp_path / "living-room.jpg"
    photo.write_bytes(jpeg(seed=11, size=(160, 120)))
    page = browser.new_page(viewport=DESKTOP)
    page.goto(live_server.url + "/")
    expect(page.locator("#create-form")).to_have_count(0)  # a guest reads; signing in offers the forms
    sign_in(page, live_server, API_KEY)
    expect(page.locator("#signed-in")).to_contain_text("admin")
    page.fill("input[name=title]", "Browser test loft")
    page.check("input[name=claimed][value=bed]")
    page.click("text=Create listing")
    expect(page.locator("h2")).to_have_text("Browser test loft")
    expect(page.locator("#flash")).to_contain_text("created")
    # The claim shows up at once, unverified: no photo yet.
    expect(page.locator("tr.amenity[data-slug=bed]")).to_have_attribute("data-status", "unverified")

    page.set_input_files("input[type=file]", str(photo))
    page.get_by_role("button", name="Upload").click()  # one request per file, each with the CSRF header
    expect(page.locator("#upload-files li[data-outcome=stored]")).to_have_count(1)
    # The page updates itself while detection runs, then shows what the photo shows.
    expect(page.locator("#processing")).to_have_attribute("data-state", "complete", timeout=60_000)
    seen = page.locator("tr.amenity[data-status=confirmed], tr.amenity[data-status=discovered]")
    expect(seen.first).to_be_visible()
    expect(page.locator("img[alt^='photo']")).to_have_count(1)
    src = page.locator("img[alt^='photo']").get_attribute("src")
    assert page.request.get(live_server.url + src).headers["content-type"] == "image/jpeg"
    shot(page, "listing")

    # Search page: tick a seen amenity and find the listing.
    slug = seen.first.get_attribute("data-slug")
    page.goto(live_server.url + "/search")
    page.check(f"input[name=amenity][value={slug}]")
    page.click("#search-form button[type=submit]")
    expect(page.locator(".hit")).to_have_count(1)
    expect(page.locator(".hit a.title")).to_have_text("Browser test loft")
    page.close()
