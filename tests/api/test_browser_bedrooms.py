"""The Bedrooms field in a real browser (headless Chromium): a host declares the count on the new-listing form,
sees it on the listing page, corrects it and clears it on the edit form; the browser refuses a count out of range
before sending anything."""

from __future__ import annotations

import httpx
import pytest
from _browser import DESKTOP, Live, browser, live_server, sign_in  # noqa: F401
from api_helpers import API_KEY

pytestmark = pytest.mark.browser


def _bedrooms(live: Live, listing_id: int) -> int | None:
    return httpx.get(f"{live.url}/api/v1/listings/{listing_id}").json()["bedrooms"]


def test_host_declares_corrects_and_clears_the_bedroom_count(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    page = browser.new_context(viewport=DESKTOP).new_page()
    sign_in(page, live, API_KEY)
    page.goto(f"{live.url}/")
    page.fill("#create-form input[name=title]", "Two-bed flat")
    page.fill("#create-form input[name=bedrooms]", "101")
    page.click("#create-form button[type=submit]")
    # Out of range: the browser keeps the form (min/max) and nothing is created.
    assert page.eval_on_selector("#create-form input[name=bedrooms]", "field => field.validity.rangeOverflow")
    expect(page).to_have_url(f"{live.url}/")
    assert httpx.get(f"{live.url}/api/v1/listings").json()["listings"] == []

    page.fill("#create-form input[name=bedrooms]", "2")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#flash")).to_contain_text("created")
    expect(page.locator("#bedrooms-declared")).to_have_text("2 bedrooms declared")
    listing_id = int(page.url.rsplit("/", 1)[1])
    assert _bedrooms(live, listing_id) == 2

    page.click("#edit summary")
    expect(page.locator("#edit-form input[name=bedrooms]")).to_have_value("2")
    page.fill("#edit-form input[name=bedrooms]", "1")
    page.click("#edit-form button[type=submit]")
    expect(page.locator("#flash")).to_have_text("Listing saved.")
    expect(page.locator("#bedrooms-declared")).to_have_text("1 bedroom declared")
    assert _bedrooms(live, listing_id) == 1

    page.click("#edit summary")
    page.fill("#edit-form input[name=bedrooms]", "")
    page.click("#edit-form button[type=submit]")
    expect(page.locator("#flash")).to_have_text("Listing saved.")
    expect(page.locator("#bedrooms-declared")).to_have_count(0)
    assert _bedrooms(live, listing_id) is None
    page.close()
