"""The page's features in a real browser (headless Chromium): evidence links and the photo view, uploads of
several files with a refused one, edit/delete, the host's confirm/reject, any-of search, phone width, offline docs.

Listings and photos are set up through the REST API, and their detections replaced with known boxes
(``set_detections``), so each test knows what the page must show.
"""

from __future__ import annotations

import re

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
    wait_processed,
)
from api_helpers import API_KEY, HEADERS, jpeg, set_detections

pytestmark = pytest.mark.browser


def _listing(live: Live, title: str, claimed=(), photos=()) -> tuple[int, list[int]]:
    """A listing with photos, created through the API and analysed by the worker."""
    with httpx.Client(base_url=live.url, headers=HEADERS) as api:
        listing_id = api.post(
            "/api/v1/listings", json={"title": title, "claimed_amenities": list(claimed)}
        ).json()["id"]
        photo_ids = []
        if photos:
            files = [("files", (f"photo-{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
            accepted = api.post(f"/api/v1/listings/{listing_id}/photos", files=files)
            photo_ids = [p["photo_id"] for p in accepted.json()["photos"]]
    wait_processed(live, listing_id)
    return listing_id, photo_ids


def _host_page(browser, live: Live, viewport=DESKTOP, **options):  # noqa: F811
    """A page of a browser signed in through ``/signin`` with the bootstrap key (the admin owns the listings)."""
    context = browser.new_context(viewport=viewport, **options)
    page = context.new_page()
    sign_in(page, live, API_KEY)
    return page


def _spoil_csrf(page, form: str) -> None:
    """Change the CSRF token a form carries, as a forged post from another site would lack it."""
    page.eval_on_selector(f"{form} input[name=csrf_token]", "field => { field.dataset.real = field.value; field.value = 'forged'; }")


def _restore_csrf(page, form: str) -> None:
    page.eval_on_selector(f"{form} input[name=csrf_token]", "field => { field.value = field.dataset.real; }")


def _px(locator, prop: str) -> float:
    return float(locator.evaluate(f"e => getComputedStyle(e).{prop}").removesuffix("px"))


def test_evidence_link_opens_the_photo_view_with_that_box_highlighted(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    listing_id, (photo_id,) = _listing(live, "Kitchen flat", ["oven"], [jpeg(seed=1, size=(400, 300))])
    set_detections(
        live.services,
        listing_id,
        photo_id,
        [
            ("oven", 0.9, (40, 30, 240, 180)),
            ("sink", 0.35, (0, 200, 100, 300)),
            ("bed", 0.2, (300, 0, 400, 300)),
        ],
    )
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{live.url}/listings/{listing_id}")
    page.click("tr[data-slug=oven] a.evidence")
    expect(page).to_have_url(f"{live.url}/photos/{photo_id}?listing={listing_id}&amenity=oven")
    evidence = page.locator(".box.evidence")
    expect(evidence).to_have_count(1)
    expect(evidence).to_have_attribute("data-slug", "oven")
    expect(page.locator("#detections tr.evidence")).to_contain_text("Oven")

    # The box sits on the oven at the size the photo is shown (here scaled up from 400 px wide).
    image = page.locator("#stage img").bounding_box()
    box = evidence.bounding_box()
    scale = image["width"] / 400
    assert scale > 1.5
    for got, want in [
        (box["x"], image["x"] + 40 * scale),
        (box["y"], image["y"] + 30 * scale),
        (box["width"], 200 * scale),
        (box["height"], 150 * scale),
    ]:
        assert abs(got - want) <= 2, (box, image)
    # Labels are amenity names at a readable size, inside the photo.
    label = evidence.locator(".label")
    expect(label).to_have_text("Oven 0.90")
    assert _px(label, "fontSize") >= 13
    bed_label = page.locator(".box[data-slug=bed] .label").bounding_box()
    assert (
        bed_label["x"] + bed_label["width"] <= image["x"] + image["width"] + 1
    )  # a right-edge box's caption
    expect(page.locator(".box")).to_have_count(3)
    shot(page, "photo")

    # The slider hides weaker boxes and their rows.
    page.locator("#min-score").fill("0.5")
    expect(page.locator(".box:visible")).to_have_count(1)
    expect(page.locator("#boxes-shown")).to_have_text("1")
    expect(page.locator("#detections tr[data-box]:visible")).to_have_count(1)
    page.locator("#min-score").fill("0.3")
    expect(page.locator(".box:visible")).to_have_count(2)

    # While images load (here: never), thumbnails and the photo keep their size: nothing jumps or collapses.
    page.route("**/*.jpg", lambda route: route.abort())
    page.goto(f"{live.url}/listings/{listing_id}")
    thumb = page.locator("tr[data-slug=oven] img.thumb").bounding_box()
    assert (round(thumb["width"]), round(thumb["height"])) == (64, 48)
    grid = page.locator("#photos img").bounding_box()
    assert grid["height"] == pytest.approx(grid["width"] * 3 / 4, abs=2)
    page.goto(f"{live.url}/photos/{photo_id}")
    stage = page.locator("#stage").bounding_box()
    assert stage["height"] == pytest.approx(stage["width"] * 3 / 4, abs=2)
    page.close()


def test_dropping_several_photos_uploads_each_and_says_which_were_refused(live_server, browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    listing_id, _ = _listing(live, "Upload flat")
    page = _host_page(browser, live)
    page.goto(f"{live.url}/listings/{listing_id}")
    files = [
        ("kitchen.jpg", jpeg(seed=1), "image/jpeg"),
        ("notes.txt", b"a shopping list, not a photo", "text/plain"),
        ("bath.jpg", jpeg(seed=2), "image/jpeg"),
    ]
    drop_files(page, ".dropzone", files)
    expect(page.locator("#upload-files li")).to_have_count(3)

    # A wrong CSRF token sends nothing and keeps the chosen files for the next try.
    _spoil_csrf(page, "#upload-form")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-summary")).to_contain_text("security token (CSRF)")
    expect(page.locator("#upload-files li")).to_have_count(3)
    expect(page.locator("#photos figure")).to_have_count(0)
    _restore_csrf(page, "#upload-form")
    page.get_by_role("button", name="Upload").click()

    expect(page.locator("#upload-summary")).to_have_text("Upload: 2 stored, 1 refused (see above).")
    refused = page.locator("#upload-files li[data-outcome=refused]")
    expect(refused).to_contain_text("notes.txt")
    expect(refused).to_contain_text("not an image")
    expect(page.locator("#upload-files li[data-outcome=stored]")).to_have_count(2)
    assert page.eval_on_selector_all("#upload-files progress", "bars => bars.map(b => b.value)") == [
        100,
        100,
        100,
    ]
    expect(page.locator("#photos figure")).to_have_count(2)  # the page shows the new photos without a reload
    shot(page, "upload")

    # The picker takes several files too; a photo the listing has already changes nothing.
    again, new = tmp_path / "kitchen-again.jpg", tmp_path / "bedroom.jpg"
    again.write_bytes(files[0][1])
    new.write_bytes(jpeg(seed=3))
    page.set_input_files("#upload-form input[type=file]", [str(again), str(new)])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-summary")).to_have_text("Upload: 1 stored, 1 already on this listing.")
    expect(page.locator("#photos figure")).to_have_count(3)
    page.close()


def test_host_edits_removes_a_photo_and_deletes_the_listing(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    listing_id, (photo_id,) = _listing(live, "Old title", ["bed"], [jpeg(seed=4)])
    set_detections(live.services, listing_id, photo_id, [])  # the photo shows nothing: claims stay unverified
    page = _host_page(browser, live)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live.url}/listings/{listing_id}")
    page.click("#edit summary")
    page.fill("#edit-form input[name=title]", "New <b>title</b>")
    page.uncheck("#edit-form input[name=claimed][value=bed]")
    page.check("#edit-form input[name=claimed][value=sink]")
    _spoil_csrf(page, "#edit-form")
    page.click("#edit-form button[type=submit]")

    # Refused (no valid CSRF token): nothing changed, everything typed is still there.
    expect(page.locator(".error")).to_contain_text("security token (CSRF)")
    expect(page.locator("#edit-form input[name=title]")).to_have_value("New <b>title</b>")
    expect(page.locator("#edit-form input[name=claimed][value=sink]")).to_be_checked()
    expect(page.locator("#edit-form input[name=claimed][value=bed]")).not_to_be_checked()
    page.click("#edit-form button[type=submit]")  # the page shown again carries the right token
    expect(page.locator("#flash")).to_have_text("Listing saved.")
    expect(page.locator("h2")).to_have_text("New <b>title</b>")  # shown as text
    expect(page.locator("tr.amenity[data-slug=sink]")).to_have_attribute("data-status", "unverified")
    expect(page.locator("tr.amenity[data-slug=bed][data-status=unverified]")).to_have_count(0)
    page.reload()
    expect(page.locator("#flash")).to_have_count(0)  # a reload neither repeats the note nor posts again

    page.click("#photos figure button:has-text('Remove')")
    expect(page.locator("#flash")).to_contain_text("removed")
    expect(page.locator("#photos figure")).to_have_count(0)
    expect(page.locator("#processing")).to_contain_text("0 of 0 photos")

    page.click("#edit summary")
    page.click("#delete-form button")
    expect(page).to_have_url(f"{live.url}/")
    expect(page.locator("#flash")).to_contain_text("deleted")
    expect(page.locator(f"a[href='/listings/{listing_id}']")).to_have_count(0)
    assert httpx.get(f"{live.url}/api/v1/listings/{listing_id}").status_code == 404
    page.close()


def test_host_confirms_and_rejects_what_the_model_reported(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    listing_id, (photo_id,) = _listing(live, "Decisions", [], [jpeg(seed=5)])
    set_detections(
        live.services, listing_id, photo_id, [("oven", 0.7, (0, 0, 40, 40)), ("bed", 0.5, (5, 5, 60, 60))]
    )
    page = _host_page(browser, live)
    page.goto(f"{live.url}/listings/{listing_id}")
    oven, bed = page.locator("tr[data-slug=oven]"), page.locator("tr[data-slug=bed]")
    expect(oven).to_have_attribute("data-status", "discovered")

    oven.get_by_role("button", name="Reject").click()
    expect(oven).to_have_attribute("data-status", "rejected")
    expect(oven).to_contain_text("host rejected")
    expect(page.locator("#flash")).to_have_text("Oven: rejected by you.")
    bed.get_by_role("button", name="Confirm").click()
    expect(bed).to_have_attribute("data-status", "confirmed")
    expect(bed).to_contain_text("host confirmed")
    shot(page, "decisions")

    # Search follows the host: the rejected oven is not found, the confirmed bed is.
    found = httpx.get(f"{live.url}/api/v1/search", params={"amenity": "oven"}).json()["hits"]
    assert found == []
    oven.get_by_role("button", name="Undo").click()
    expect(oven).to_have_attribute("data-status", "discovered")
    expect(oven).not_to_contain_text("host rejected")
    page.close()


def test_any_of_search_with_evidence_thumbnails_at_phone_width(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    first, (first_photo,) = _listing(
        live,
        "Cosy <em>studio</em> with a very long title that must wrap on a phone",
        [],
        [jpeg(seed=6, size=(320, 240))],
    )
    second, (second_photo,) = _listing(live, "Oven house", [], [jpeg(seed=7, size=(320, 240))])
    third, (third_photo,) = _listing(live, "Nothing here", [], [jpeg(seed=8)])
    set_detections(
        live.services,
        first,
        first_photo,
        [("bed", 0.6, (10, 10, 200, 150)), ("sink", 0.4, (200, 100, 320, 240))],
    )
    set_detections(live.services, second, second_photo, [("oven", 0.8, (30, 40, 300, 230))])
    set_detections(live.services, third, third_photo, [])

    for viewport in (PHONE, DESKTOP):
        page = _host_page(browser, live, viewport)
        page.goto(f"{live.url}/search")
        page.check(".pick[data-slug=bed] input[name=any]")
        page.check(".pick[data-slug=oven] input[name=any]")
        page.get_by_role("button", name="Search").click()
        hits = page.locator("li.hit")
        expect(hits).to_have_count(2)
        expect(hits.nth(0)).to_contain_text("Bed (0.60)")
        expect(hits.nth(1)).to_contain_text("Oven (0.80)")
        expect(
            page.locator(".pick[data-slug=oven] input[name=any]")
        ).to_be_checked()  # the form keeps the query
        page.wait_for_function(
            "[...document.querySelectorAll('li.hit img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        no_sideways_scroll(page)
        # Every thumbnail keeps its size beside a long title (the link around it must not shrink).
        widths = [round(b["width"]) for b in (hits.nth(i).locator("img.thumb").bounding_box() for i in range(2))]
        assert widths == [96, 96], widths
        shot(page, "search")

        hits.nth(1).locator("a.evidence").click()
        expect(page.locator(".box.evidence")).to_have_attribute("data-slug", "oven")
        no_sideways_scroll(page)
        shot(page, "photo-from-search")

        page.goto(f"{live.url}/listings/{first}")
        expect(page.locator("tr.amenity")).to_have_count(2)
        no_sideways_scroll(page)
        shot(page, "listing-phone" if viewport is PHONE else "listing-desktop")
        page.goto(f"{live.url}/")
        no_sideways_scroll(page)
        shot(page, "index")
        page.goto(f"{live.url}/photos/{first_photo}?listing={first}&amenity=sink")
        expect(page.locator(".box.evidence")).to_have_attribute("data-slug", "sink")
        no_sideways_scroll(page)
        page.context.close()


def test_api_docs_work_with_no_internet(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    page = browser.new_page(viewport=DESKTOP)
    outside = []

    def local_only(route):
        if route.request.url.startswith(live.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.goto(f"{live.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("roomscan")
    expect(
        page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/v1/listings$")).first
    ).to_be_visible()
    assert outside == []
    shot(page, "docs")
    page.close()


def test_without_javascript_the_plain_upload_form_reports_refused_files(live_server, browser, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    live = live_server
    listing_id, _ = _listing(live, "No script")
    good, bad = tmp_path / "terrace.jpg", tmp_path / "plan.pdf"
    good.write_bytes(jpeg(seed=9))
    bad.write_bytes(b"%PDF-1.4 not a photo")
    page = _host_page(browser, live, PHONE, java_script_enabled=False)
    context = page.context
    page.goto(f"{live.url}/listings/{listing_id}")
    page.set_input_files("#upload-form input[type=file]", [str(good), str(bad)])
    page.get_by_role("button", name="Upload").click()
    expect(page).to_have_url(f"{live.url}/listings/{listing_id}")  # redirected: a reload posts nothing
    expect(page.locator("#flash")).to_contain_text("Upload: 1 stored, 1 refused.")
    expect(page.locator("#upload-account li[data-outcome=refused]")).to_contain_text("plan.pdf")
    expect(page.locator("#upload-account li[data-outcome=stored]")).to_contain_text("terrace.jpg")
    expect(page.locator("#photos figure")).to_have_count(1)
    no_sideways_scroll(page)
    shot(page, "upload-no-script")
    context.close()
