"""Listing photo insights on the web page (HTML over HTTP, no browser): room badges, quality warnings with their
plain reason, duplicate flags linking the other listings the reader may see, the suggested tour with its cover and
completeness notes; the photo page's room scores and quality; the search page's room select.

The page must say what the API says (``/api/v1/listings/{id}/insights`` is the reference here), and tell a reader
nothing about listings it may not see. What needs a browser is in ``test_browser_insights.py``.
"""

from __future__ import annotations

import html
import re

import pytest
from api_helpers import HEADERS
from insight_photos import Catalog, build_catalog, listing_with_photos, room_jpeg
from page_helpers import sign_in

from roomscan.insights.rooms import default_room_types

ROOMS = default_room_types()


@pytest.fixture
def catalog(client, services, hosts) -> Catalog:  # type: ignore[no-untyped-def]
    def settle(listing_ids: list[int]) -> None:
        assert services.worker.run_until_idle().done == 5

    return build_catalog(client, hosts, settle)


def _figure(page: str, photo_id: int) -> str:
    """The listing page's figure of one photo."""
    match = re.search(rf'<figure data-photo="{photo_id}".*?</figure>', page, re.DOTALL)
    assert match, f"no figure for photo {photo_id}"
    return match.group(0)


def _section(page: str, section_id: str) -> str:
    match = re.search(rf'<section class="card" id="{section_id}".*?</section>', page, re.DOTALL)
    assert match, f"no section {section_id}"
    return match.group(0)


def _text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def _api(client, listing_id: int) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return client.get(f"/api/v1/listings/{listing_id}/insights", headers=HEADERS).json()


def test_each_photo_shows_its_room_badge_and_quality_warnings(client, catalog):
    page = client.get(f"/listings/{catalog.sea}").text
    api = {p["photo_id"]: p for p in _api(client, catalog.sea)["photos"]}
    for photo_id in (catalog.living, catalog.dark, catalog.bedroom):
        figure = _figure(page, photo_id)
        best = api[photo_id]["room"]["best"]
        badge = re.search(r'<span class="badge room" data-room="([^"]+)"[^>]*>([^<]+)</span>', figure)
        assert badge and badge.groups() == (best, ROOMS[best].name), figure
        assert f'data-room="{best}"' in figure.split(">", 1)[0]
        # The photo's alt text names its room too.
        assert re.search(rf'alt="photo {photo_id}: [^"]*\({re.escape(ROOMS[best].name)}\)"', figure)
    dark = _figure(page, catalog.dark)
    issue = re.search(r'<li class="issue problem" data-code="too_dark".*?</li>', dark, re.DOTALL)
    assert issue, dark
    brightness = api[catalog.dark]["quality"]["brightness"]
    assert _text(issue.group(0)).startswith(f"Problem: too dark: brightness {brightness:.0f}/255")
    assert "too_dark" not in _figure(page, catalog.living)


def test_a_duplicate_flag_links_the_other_listing(client, catalog):
    page = client.get(f"/listings/{catalog.sea}").text
    flag = re.search(r'<p class="duplicate-flag".*?</p>', _figure(page, catalog.living), re.DOTALL)
    assert flag, _figure(page, catalog.living)
    assert f'<a href="/listings/{catalog.copy}" data-listing="{catalog.copy}"' in flag.group(0)
    assert _text(flag.group(0)) == "Same picture on Copy flat."
    assert "duplicate-flag" not in _figure(page, catalog.dark)
    # The copier's page points back.
    back = client.get(f"/listings/{catalog.copy}").text
    assert f'href="/listings/{catalog.sea}"' in _figure(back, catalog.copied)


@pytest.mark.parametrize(
    ("who", "shows"),
    [
        (None, None),  # a guest: nothing about the draft, not even that it exists
        ("a", "Same picture on 1 listing you cannot see."),  # another host: counted, never linked
        ("b", "Same picture on Secret draft."),  # its owner: linked
    ],
)
def test_a_duplicate_on_an_unpublished_listing_shows_only_to_who_may_see_it(client, catalog, who, shows):
    if who:
        sign_in(client, catalog.keys[who])
    page = client.get(f"/listings/{catalog.sea}").text
    figure = _figure(page, catalog.bedroom)
    flag = re.search(r'<p class="duplicate-flag".*?</p>', figure, re.DOTALL)
    if shows is None:
        assert flag is None and "cannot see" not in page
    else:
        assert flag and _text(flag.group(0)) == shows
    if who != "b":
        assert "Secret draft" not in page and f"/listings/{catalog.draft}" not in page


def test_the_tour_lists_the_photos_in_order_with_the_cover_marked_and_the_notes(client, catalog):
    tour = _api(client, catalog.sea)["tour"]
    section = _section(client.get(f"/listings/{catalog.sea}").text, "tour")
    stops = re.findall(r'<li data-photo="(\d+)" data-room="([^"]+)"( class="cover")?>', section)
    assert [int(p) for p, _, _ in stops] == tour["order"]
    assert [room for _, room, _ in stops] == [s["room"] for s in tour["stops"]]
    assert [int(p) for p, _, cover in stops if cover] == [tour["cover"]]
    cover = re.search(r'<li data-photo="\d+" data-room="[^"]+" class="cover">.*?</li>', section, re.DOTALL).group(0)
    assert 'id="tour-cover"' in cover and "the cover photo" in cover  # seen, and said in its alt text
    notes = re.search(r'id="completeness".*?</(ul|p)>', section, re.DOTALL).group(0)
    if tour["notes"]:
        assert re.findall(r'<li data-code="[^"]+">([^<]+)</li>', notes) == [html.escape(n["message"]) for n in
                                                                          tour["notes"]]
    else:
        assert "Nothing missing" in notes


def test_before_the_worker_ran_the_page_says_rooms_and_tour_are_pending(client, services, hosts):
    listing_id, (photo_id,) = listing_with_photos(client, hosts["a"], "Fresh", [("new.jpg", room_jpeg(7))])
    page = client.get(f"/listings/{listing_id}").text
    figure = _figure(page, photo_id)
    assert "badge room" not in figure and "Room type: still being analysed" in figure
    assert "once the photos have been analysed" in _section(page, "tour")
    services.worker.run_until_idle()
    page = client.get(f"/listings/{listing_id}").text
    assert "badge room" in _figure(page, photo_id) and 'id="tour-order"' in page


def test_the_photo_page_shows_room_scores_and_quality(client, catalog):
    body = client.get(f"/api/v1/photos/{catalog.dark}", headers=HEADERS).json()
    page = client.get(f"/photos/{catalog.dark}?listing={catalog.sea}").text
    table = re.search(r'<table id="room-scores".*?</table>', page, re.DOTALL).group(0)
    rows = re.findall(r'<tr data-room="([^"]+)"( class="best")?><td>([^<]+)</td><td>([\d.]+)</td>', table)
    assert {slug for slug, *_ in rows} == set(ROOMS.slugs)
    probs = [float(p) for *_, p in rows]
    assert probs == sorted(probs, reverse=True)  # most likely first
    assert [slug for slug, best, *_ in rows if best] == [body["room"]["best"]]
    assert {slug: name for slug, _, name, _ in rows} == {r.slug: r.name for r in ROOMS}
    issues = _text(re.search(r'<ul class="quality-issues" id="quality-issues">.*?</ul>', page, re.DOTALL).group(0))
    assert "too dark: brightness" in issues
    assert f"Score {body['quality']['score']:.0f}/100" in _text(page)
    # A photo only on a listing the reader may not see: 404, room and quality with it.
    assert client.get(f"/photos/{catalog.drafted}").status_code == 404


def test_the_search_page_filters_by_room(client, catalog):
    page = client.get("/search").text
    select = re.search(r'<select name="room" id="room">.*?</select>', page, re.DOTALL).group(0)
    assert re.findall(r'<option value="([^"]*)"', select) == ["", *ROOMS.slugs]
    assert '<label for="room">' in page
    room = _api(client, catalog.sea)["photos"][0]["room"]["best"]
    found = client.get("/search", params={"room": room})
    assert found.status_code == 200
    assert f'data-listing="{catalog.sea}"' in found.text
    assert f'<option value="{room}" selected>' in found.text  # the choice stays
    assert f'data-listing="{catalog.draft}"' not in found.text
    hit = re.search(rf'<li class="hit" data-listing="{catalog.sea}">.*?</li>', found.text, re.DOTALL).group(0)
    assert f"{ROOMS[room].name} (" in _text(hit) and "/160.jpg" in hit  # a photo of that room as its thumbnail


def test_the_search_page_refuses_an_unknown_room_naming_the_valid_ones(client):
    r = client.get("/search", params={"room": "attic"})
    assert r.status_code == 422
    error = _text(re.search(r'<div class="error" role="alert">.*?</div>', r.text, re.DOTALL).group(0))
    assert "attic" in error and "bathroom" in error and "living-room" in error
