"""Listing photo insights in a real browser (headless Chromium): room badges on the photos, a quality warning on a
dark photo, a duplicate flag that leads to the other listing, the suggested tour with its cover marked, the photo
page's room scores, and the search page's room select; at phone width and without JavaScript.

Photos are generated (a dark room; a near-copy made by resizing and re-encoding at JPEG quality 60 and attached to
a second listing), uploaded through the REST API and analysed by the server's own worker thread on the tiny
detector; the API's ``/insights`` answer says what each page must show.
"""

from __future__ import annotations

import time

import httpx
import pytest
from _browser import (  # noqa: F401
    DESKTOP,
    PHONE,
    Live,
    browser,
    drop_files,
    live_server,
    no_sideways_scroll,
    shot,
    sign_in,
)
from api_helpers import API_KEY, HEADERS
from insight_photos import Catalog, build_catalog, room_jpeg

from roomscan import auth
from roomscan.catalog.models import Role
from roomscan.insights.rooms import default_room_types

pytestmark = pytest.mark.browser
ROOMS = default_room_types()


def _catalog(live: Live) -> Catalog:
    """Host a's "Sea flat" (living room, dark room, bedroom), host b's "Copy flat" (a near-copy of the living
    room) and unpublished "Secret draft" (a near-copy of the bedroom), analysed by the server's worker."""
    with live.services.sessions() as session, session.begin():
        hosts = {n: auth.create_key(session, auth.create_user(session, f"host-{n}", Role.HOST)) for n in "ab"}

    def settle(listing_ids: list[int]) -> None:
        deadline = time.monotonic() + 60
        for listing_id in listing_ids:  # the admin's key reads the draft too
            while (state := httpx.get(f"{live.url}/api/v1/listings/{listing_id}/amenities", headers=HEADERS)
                   .json()["processing"]["state"]) != "complete":
                assert time.monotonic() < deadline, f"listing {listing_id} still {state}"
                time.sleep(0.2)

    with httpx.Client(base_url=live.url, timeout=30) as client:
        return build_catalog(client, hosts, settle)


def _insights(live: Live, listing_id: int) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{live.url}/api/v1/listings/{listing_id}/insights").json()


def test_the_listing_page_shows_rooms_quality_duplicates_and_the_tour(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    catalog = _catalog(live)
    api = _insights(live, catalog.sea)
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{live.url}/listings/{catalog.sea}")

    # A room badge on every photo, naming the room the model found most likely.
    for photo in api["photos"]:
        badge = page.locator(f"#photos figure[data-photo='{photo['photo_id']}'] .badge.room")
        expect(badge).to_be_visible()
        expect(badge).to_have_text(ROOMS[photo["room"]["best"]].name)

    # The dark photo says why it should not lead, in words a host can act on.
    warning = page.locator(f"figure[data-photo='{catalog.dark}'] .quality-issues li[data-code=too_dark]")
    expect(warning).to_be_visible()
    brightness = next(p for p in api["photos"] if p["photo_id"] == catalog.dark)["quality"]["brightness"]
    expect(warning).to_contain_text(f"too dark: brightness {brightness:.0f}/255")
    expect(page.locator(f"figure[data-photo='{catalog.living}'] li[data-code=too_dark]")).to_have_count(0)

    # The tour: every photo once, in the suggested order, the cover marked where the eye sees it.
    stops = page.locator("#tour-order li")
    expect(stops).to_have_count(3)
    assert [int(x) for x in stops.evaluate_all("items => items.map(i => i.dataset.photo)")] == api["tour"]["order"]
    cover = page.locator("#tour-order li.cover")
    expect(cover).to_have_count(1)
    expect(cover).to_have_attribute("data-photo", str(api["tour"]["cover"]))
    expect(cover.locator("#tour-cover")).to_be_visible()
    expect(cover.locator("#tour-cover")).to_have_text("Cover")
    assert cover.locator("img").evaluate("i => getComputedStyle(i).outlineStyle") == "solid"
    for note in api["tour"]["notes"]:
        expect(page.locator(f"#completeness li[data-code='{note['code']}']").first).to_be_visible()
    shot(page, "insights-listing")

    # The duplicate flag leads to the other listing, whose page points back.
    flag = page.locator(f"figure[data-photo='{catalog.living}'] .duplicate-flag")
    expect(flag).to_be_visible()
    expect(page.locator(f"figure[data-photo='{catalog.dark}'] .duplicate-flag")).to_have_count(0)
    flag.get_by_role("link", name="Copy flat").click()
    expect(page).to_have_url(f"{live.url}/listings/{catalog.copy}")
    back = page.locator(f"figure[data-photo='{catalog.copied}'] .duplicate-flag a")
    expect(back).to_have_text("Sea flat")
    expect(back).to_have_attribute("href", f"/listings/{catalog.sea}")

    # A guest learns nothing of the unpublished draft that shows the bedroom.
    page.goto(f"{live.url}/listings/{catalog.sea}")
    expect(page.locator(f"figure[data-photo='{catalog.bedroom}'] .duplicate-flag")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Secret draft")
    page.close()


def test_a_host_is_told_a_listing_she_may_not_see_shares_her_photo_never_which(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    catalog = _catalog(live)
    for who, text in (("a", "Same picture on 1 listing you cannot see."), ("b", "Same picture on Secret draft.")):
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        sign_in(page, live, catalog.keys[who])
        page.goto(f"{live.url}/listings/{catalog.sea}")
        flag = page.locator(f"figure[data-photo='{catalog.bedroom}'] .duplicate-flag")
        expect(flag).to_have_text(text)
        expect(flag.locator("a")).to_have_count(0 if who == "a" else 1)
        context.close()


def test_at_phone_width_without_javascript_the_insights_fit_and_search_by_room_works(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    catalog = _catalog(live)
    api = _insights(live, catalog.sea)
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live.url}/listings/{catalog.sea}")
    expect(page.locator("#photos .badge.room")).to_have_count(3)
    expect(page.locator("#tour-order li.cover")).to_have_count(1)
    expect(page.locator(f"figure[data-photo='{catalog.dark}'] li[data-code=too_dark]")).to_be_visible()
    no_sideways_scroll(page)
    shot(page, "insights-listing-phone")

    # The photo page: every room's probability, the most likely one first and marked.
    page.goto(f"{live.url}/photos/{catalog.dark}?listing={catalog.sea}")
    rows = page.locator("#room-scores tr[data-room]")
    expect(rows).to_have_count(len(ROOMS))
    best = next(p for p in api["photos"] if p["photo_id"] == catalog.dark)["room"]["best"]
    expect(rows.first).to_have_attribute("data-room", best)
    expect(rows.first).to_have_class("best")
    expect(page.locator("#quality-issues li[data-code=too_dark]")).to_be_visible()
    no_sideways_scroll(page)
    shot(page, "insights-photo-phone")

    # Search: choose a room in the select (a plain GET form), the listing with that room comes up.
    page.goto(f"{live.url}/search")
    page.get_by_label("Room a photo shows").select_option(ROOMS[best].name)
    page.get_by_role("button", name="Search").click()
    expect(page.locator(f"li.hit[data-listing='{catalog.sea}']")).to_be_visible()
    expect(page.locator(f"li.hit[data-listing='{catalog.draft}']")).to_have_count(0)
    expect(page.get_by_label("Room a photo shows")).to_have_value(best)
    no_sideways_scroll(page)
    context.close()


def test_the_tour_appears_without_a_reload_once_the_worker_has_typed_dropped_photos(live_server, browser):  # noqa: F811
    """With JavaScript the listing page follows its photos' processing (its live parts): the tour and the room
    badges too, after photos are dropped on it."""
    from playwright.sync_api import expect

    live = live_server
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, live, API_KEY)
    with httpx.Client(base_url=live.url, headers=HEADERS) as api:
        listing_id = api.post("/api/v1/listings", json={"title": "Fresh flat"}).json()["id"]
    page.goto(f"{live.url}/listings/{listing_id}")
    expect(page.locator("#tour-pending")).to_have_text("Add photos to get a suggested tour.")
    page.evaluate("window.notReloaded = true")
    drop_files(page, ".dropzone", [(f"room-{i}.jpg", room_jpeg(20 + i), "image/jpeg") for i in range(2)])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#tour-order li")).to_have_count(2, timeout=60_000)
    expect(page.locator("#tour-order li.cover")).to_have_count(1)
    expect(page.locator("#photos .badge.room")).to_have_count(2)
    assert page.evaluate("window.notReloaded") is True
    context.close()
