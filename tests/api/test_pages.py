"""The web page over HTTP (no browser): redirects after writes, forms that keep what was typed, per-file upload
accounts, the photo view's boxes, thumbnails, edit/delete, the host's decisions, search, favicon and offline docs.

What needs a browser (scripts, layout, phone width) is in ``test_browser_pages.py``.
"""

from __future__ import annotations

import io
import re

import pytest
from api_helpers import API_KEY, HEADERS, jpeg, page_create, set_detections, upload
from page_helpers import sign_in
from PIL import Image


@pytest.fixture(autouse=True)
def _signed_in(client):
    """Every test here starts signed in (session cookie, CSRF token in the header), as a host after /signin."""
    sign_in(client)


def _photo_ids(client, listing_id):
    return client.get(f"/api/v1/listings/{listing_id}").json()["photo_ids"]


def _amenities(client, listing_id):
    return {a["slug"]: a for a in client.get(f"/api/v1/listings/{listing_id}/amenities").json()["amenities"]}


def _row(html: str, slug: str) -> str:
    """The amenity checklist row of ``slug`` in a listing page."""
    match = re.search(rf'<tr class="amenity" id="amenity-{slug}".*?</tr>', html, re.DOTALL)
    assert match, f"no row for {slug}"
    return match.group(0)


def test_creating_a_listing_redirects_and_the_page_says_it_was_created(client):
    r = client.post(
        "/listings",
        data={"title": "Harbour flat", "claimed": ["bed"], "api_key": API_KEY},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert "Listing “Harbour flat” created." in page.text
    assert "created." not in client.get(r.headers["location"]).text  # said once, not on every visit
    assert "Signed in as <strong>admin</strong>" in page.text and 'name="api_key"' not in page.text


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ({"api_key": "not-the-key"}, 401, "unknown API key"),
        ({"api_key": API_KEY, "claimed": ["bed", "hammock"]}, 422, "unknown amenity"),
    ],
)
def test_a_refused_new_listing_keeps_what_was_typed(client, data, code, message):
    form = {"title": 'Loft <b>"sunny"</b>', "claimed": ["bed", "oven"]} | data
    r = client.post("/listings", data=form)
    assert r.status_code == code and message in r.text
    assert 'value="Loft &lt;b&gt;&#34;sunny&#34;&lt;/b&gt;"' in r.text  # typed title back, escaped
    for slug in form["claimed"]:
        if slug != "hammock":
            assert re.search(rf'value="{slug}" checked', r.text), slug
    assert not re.search(r'value="sink" checked', r.text)
    assert client.get("/api/v1/listings").json()["listings"] == []


def test_titles_with_markup_are_shown_as_text(client):
    listing_id = page_create(client, "<script>alert(1)</script>")
    html = client.get(f"/listings/{listing_id}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_claims_read_checking_while_photos_are_processing(client, services):
    listing_id = page_create(client, claimed=["bed", "sink"])
    no_photo_yet = client.get(f"/listings/{listing_id}").text
    assert 'data-shown="unverified"' in _row(no_photo_yet, "bed")
    upload(client, listing_id, ("a.jpg", jpeg(seed=1)))
    html = client.get(f"/listings/{listing_id}").text
    assert 'data-state="processing"' in html
    for slug in ("bed", "sink"):
        row = _row(html, slug)
        assert 'data-shown="checking"' in row and ">checking<" in row and ">unverified<" not in row
    services.worker.run_until_idle()
    html = client.get(f"/listings/{listing_id}").text
    assert 'data-state="complete"' in html and 'data-shown="checking"' not in html


def test_the_plain_upload_form_stores_good_files_and_says_which_were_refused(client):
    listing_id = page_create(client)
    files = [
        ("files", ("kitchen.jpg", jpeg(seed=1), "image/jpeg")),
        ("files", ("notes.txt", b"not a photo at all", "text/plain")),
        ("files", ("bath.jpg", jpeg(seed=2), "image/jpeg")),
        ("files", ("kitchen-again.jpg", jpeg(seed=1), "image/jpeg")),
    ]
    r = client.post(f"/listings/{listing_id}/photos", files=files, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/listings/{listing_id}"
    html = client.get(r.headers["location"]).text
    assert "Upload: 2 stored, 1 already on this listing, 1 refused." in html
    account = re.findall(r'data-outcome="(\w+)"><strong>([^<]+)</strong>', html)
    assert account == [
        ("stored", "kitchen.jpg"),
        ("refused", "notes.txt"),
        ("stored", "bath.jpg"),
        ("already_on_listing", "kitchen-again.jpg"),
    ]
    assert re.search(r"<strong>notes.txt</strong>\s+refused: not an image roomscan can read", html)  # and why
    assert len(_photo_ids(client, listing_id)) == 2


def test_the_plain_upload_form_with_a_wrong_key_stores_nothing_and_says_so(client):
    listing_id = page_create(client)
    client.cookies.clear()
    r = client.post(
        f"/listings/{listing_id}/photos",
        data={"api_key": "nope"},
        files=[("files", ("a.jpg", jpeg(), "image/jpeg"))],
    )
    assert r.status_code == 401 and "unknown API key" in r.text and "choose the photos again" in r.text
    assert _photo_ids(client, listing_id) == []


def test_the_per_file_upload_answers_each_file_in_json(client, services):
    listing_id = page_create(client)
    url = f"/listings/{listing_id}/photos/file"
    stored = client.post(url, files={"file": ("a.jpg", jpeg(seed=5), "image/jpeg")})
    assert (
        stored.status_code == 200
        and stored.json()["outcome"] == "stored"
        and stored.json()["name"] == "a.jpg"
    )
    again = client.post(url, files={"file": ("b.jpg", jpeg(seed=5), "image/jpeg")})
    assert (
        again.json()["outcome"] == "already_on_listing"
        and again.json()["photo_id"] == stored.json()["photo_id"]
    )
    bad = client.post(url, files={"file": ("c.png", b"\x89PNG\r\n\x1a\n broken", "image/png")})
    assert bad.status_code == 422 and bad.json()["outcome"] == "refused" and "corrupt" in bad.json()["detail"]
    big = client.post(
        url, files={"file": ("huge.jpg", b"\xff" * (services.settings.max_upload_bytes + 1), "image/jpeg")}
    )
    assert big.status_code == 413 and big.json()["outcome"] == "refused" and "limit" in big.json()["detail"]
    client.cookies.clear()
    refused_key = client.post(
        url, files={"file": ("d.jpg", jpeg(seed=6), "image/jpeg")}, data={"api_key": "nope"}
    )
    assert refused_key.status_code == 401 and refused_key.json()["detail"] == "unknown API key"
    assert _photo_ids(client, listing_id) == [stored.json()["photo_id"]]


def _exif_rotated_jpeg() -> bytes:
    """A 120x60 photo stored sideways with EXIF orientation 6: upright it is 60 wide, 120 tall."""
    image = Image.new("RGB", (120, 60), (200, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_thumbnails_are_upright_small_jpegs_cached_for_good(client):
    listing_id = page_create(client)
    photo_id = upload(client, listing_id, ("side.jpg", _exif_rotated_jpeg())).json()["photos"][0]["photo_id"]
    r = client.get(f"/photos/{photo_id}/160.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "immutable" in r.headers["cache-control"]
    assert Image.open(io.BytesIO(r.content)).size == (60, 120)  # upright, as the boxes are
    big = upload(client, listing_id, ("big.jpg", jpeg(seed=3, size=(900, 600)))).json()["photos"][0][
        "photo_id"
    ]
    assert Image.open(io.BytesIO(client.get(f"/photos/{big}/480.jpg").content)).size == (480, 320)
    assert client.get(f"/photos/{big}/333.jpg").status_code == 404  # only the page's sizes


def test_the_photo_view_draws_each_box_where_it_is_and_highlights_the_evidence(client, services):
    listing_id = page_create(client, claimed=["oven"])
    photo_id = upload(client, listing_id, ("k.jpg", jpeg(seed=1, size=(200, 100)))).json()["photos"][0][
        "photo_id"
    ]
    services.worker.run_until_idle()
    set_detections(
        services,
        listing_id,
        photo_id,
        [("oven", 0.9, (20, 10, 120, 60)), ("bed", 0.6, (150, 0, 200, 100)), ("oven", 0.4, (0, 0, 10, 10))],
    )
    html = client.get(f"/photos/{photo_id}?listing={listing_id}&amenity=Oven").text
    boxes = re.findall(
        r'<div class="box([^"]*)" id="box-\d+"\s+data-slug="(\w+)" data-score="([\d.]+)"\s+style="[^"]*left: ([\d.]+)%; '
        r"top: ([\d.]+)%; width: ([\d.]+)%; height: ([\d.]+)%",
        html,
    )
    assert [(b[1], b[2]) for b in boxes] == [("oven", "0.9000"), ("bed", "0.6000"), ("oven", "0.4000")]
    # Boxes in percent of the upright photo (200 x 100): they scale with the displayed image.
    assert tuple(float(v) for v in boxes[0][3:]) == (10.0, 10.0, 50.0, 50.0)
    assert [("evidence" in b[0], b[1]) for b in boxes] == [(True, "oven"), (False, "bed"), (False, "oven")]
    assert "label-right" in boxes[1][0]  # a box at the right edge keeps its caption inside the frame
    assert ">Oven 0.90</span>" in html and ">Bed 0.60</span>" in html  # names, not slugs
    assert len(re.findall(r"<tr data-box=", html)) == 3
    assert 'id="min-score"' in html and 'type="range"' in html
    assert f'href="/listings/{listing_id}#amenity-oven"' in html


def test_each_amenity_row_links_to_the_photo_that_shows_it(client, services):
    listing_id = page_create(client, claimed=["bed"])
    first, second = (
        p["photo_id"]
        for p in upload(client, listing_id, ("a.jpg", jpeg(seed=1)), ("b.jpg", jpeg(seed=2))).json()["photos"]
    )
    services.worker.run_until_idle()
    set_detections(services, listing_id, first, [("bed", 0.3, (0, 0, 40, 30))])
    set_detections(
        services, listing_id, second, [("bed", 0.8, (10, 10, 50, 40)), ("oven", 0.5, (1, 1, 20, 20))]
    )
    html = client.get(f"/listings/{listing_id}").text
    best = f'href="/photos/{second}?listing={listing_id}&amp;amenity=bed"'  # the photo with the best box
    assert best in _row(html, "bed")
    assert f'href="/photos/{second}?listing={listing_id}&amp;amenity=oven"' in _row(html, "oven")
    assert 'width="64" height="48"' in _row(html, "bed")  # thumbnails keep their size while loading


def test_editing_a_listing_redirects_and_the_roll_up_follows(client, services):
    listing_id = page_create(client, claimed=["bed"])
    r = client.post(
        f"/listings/{listing_id}/edit",
        data={"title": "Renamed", "claimed": ["oven", "Sink"]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert client.get(f"/api/v1/listings/{listing_id}").json()["claimed_amenities"] == ["oven", "sink"]
    assert {slug: a["status"] for slug, a in _amenities(client, listing_id).items()} == {
        "oven": "unverified",
        "sink": "unverified",
    }
    assert "Listing saved." in client.get(r.headers["location"]).text


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ({"title": "   ", "claimed": ["oven"]}, 422, "non-empty title"),
        ({"title": "New <i>name</i>", "claimed": ["oven", "hammock"]}, 422, "unknown amenity"),
        ({"title": "New <i>name</i>", "claimed": ["oven"], "csrf_token": "wrong"}, 403, "security token (CSRF)"),
    ],
)
def test_a_refused_edit_keeps_what_was_typed_and_changes_nothing(client, data, code, message):
    listing_id = page_create(client, "Original", claimed=["bed"])
    r = client.post(f"/listings/{listing_id}/edit", data=data)
    assert r.status_code == code and message in r.text
    edit = r.text[r.text.index('id="edit-form"') :]
    assert (
        f'name="title" required maxlength="200" value="{data["title"].replace("<", "&lt;").replace(">", "&gt;")}"'
        in edit
    )
    assert re.search(r'value="oven" checked', edit) and not re.search(r'value="bed" checked', edit)
    assert "<details open>" in r.text
    assert client.get(f"/api/v1/listings/{listing_id}").json()["title"] == "Original"


def test_removing_a_photo_and_deleting_a_listing_from_the_page(client, services):
    listing_id = page_create(client, claimed=[])
    photo_id = upload(client, listing_id, ("a.jpg", jpeg(seed=1))).json()["photos"][0]["photo_id"]
    services.worker.run_until_idle()
    set_detections(services, listing_id, photo_id, [("oven", 0.7, (0, 0, 30, 30))])
    assert "oven" in _amenities(client, listing_id)
    r = client.post(f"/listings/{listing_id}/photos/{photo_id}/delete", follow_redirects=False)
    assert r.status_code == 303
    assert _photo_ids(client, listing_id) == []
    assert _amenities(client, listing_id) == {}  # the roll-up follows
    assert client.post(f"/listings/{listing_id}/photos/{photo_id}/delete").status_code == 404
    r = client.post(f"/listings/{listing_id}/delete", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "deleted." in client.get("/").text
    assert client.get(f"/listings/{listing_id}").status_code == 404


def test_deleting_needs_the_key(client):
    listing_id = page_create(client)
    client.cookies.clear()
    assert client.post(f"/listings/{listing_id}/delete", data={"api_key": "wrong"}).status_code == 401
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 200


def test_the_host_confirms_and_rejects_beside_the_models_output(client, services):
    listing_id = page_create(client, claimed=[])
    photo_id = upload(client, listing_id, ("a.jpg", jpeg(seed=1))).json()["photos"][0]["photo_id"]
    services.worker.run_until_idle()
    set_detections(
        services, listing_id, photo_id, [("oven", 0.7, (0, 0, 30, 30)), ("bed", 0.5, (5, 5, 40, 40))]
    )
    detections = client.get(f"/api/v1/photos/{photo_id}").json()["detections"]

    url = f"/listings/{listing_id}/amenities"
    r = client.post(f"{url}/Oven/decision", data={"decision": "rejected"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("#amenity-oven")
    r = client.post(f"{url}/bed/decision", data={"decision": "confirmed"}, follow_redirects=False)
    assert r.status_code == 303

    html = client.get(f"/listings/{listing_id}").text
    assert "host rejected" in _row(html, "oven") and 'data-status="rejected"' in _row(html, "oven")
    assert "host confirmed" in _row(html, "bed") and 'data-status="confirmed"' in _row(html, "bed")
    after = client.get(f"/api/v1/photos/{photo_id}").json()["detections"]
    assert after == detections  # the model's output stays as it was
    hits = client.get("/api/v1/search", params={"amenity": "oven"}).json()["hits"]
    assert hits == []  # a rejected amenity is not found
    search = client.get("/search", params={"any": ["oven", "bed"]}).text
    assert search.count('class="hit"') == 1

    cleared = client.post(f"{url}/oven/decision", data={"decision": "clear"}, follow_redirects=False)
    assert cleared.status_code == 303
    assert 'data-status="discovered"' in _row(client.get(f"/listings/{listing_id}").text, "oven")
    assert client.post(f"{url}/oven/decision", data={"decision": "maybe"}).status_code == 422


def test_search_page_all_of_any_of_names_and_evidence_thumbnails(client, services):
    both = page_create(client, "Both", claimed=[])
    only_bed = page_create(client, "Only bed", claimed=[])
    neither = page_create(client, "Neither", claimed=[])
    photos = {}
    for listing_id, seed in ((both, 1), (only_bed, 2), (neither, 3)):
        photos[listing_id] = upload(client, listing_id, ("p.jpg", jpeg(seed=seed))).json()["photos"][0][
            "photo_id"
        ]
    services.worker.run_until_idle()
    set_detections(services, both, photos[both], [("bed", 0.5, (0, 0, 9, 9)), ("oven", 0.8, (1, 1, 9, 9))])
    set_detections(services, only_bed, photos[only_bed], [("bed", 0.6, (0, 0, 9, 9))])
    set_detections(services, neither, photos[neither], [])

    def hits(**params):
        html = client.get("/search", params=params).text
        return re.findall(r'<li class="hit" data-listing="(\d+)">', html), html

    ids, html = hits(any=["bed", "oven"])
    assert ids == [str(both), str(only_bed)]
    assert "Bed (0.50), Oven (0.80)" in html and "bed (" not in html  # names, not slugs
    # Each hit shows its strongest evidence photo, linked to the photo view with that box highlighted.
    assert f'href="/photos/{photos[both]}?listing={both}&amp;amenity=oven"' in html
    assert f'src="/photos/{photos[only_bed]}/160.jpg" width="96" height="72"' in html
    assert re.search(r'name="any" value="bed" checked', html) and not re.search(
        r'name="amenity" value="bed" checked', html
    )
    assert hits(amenity=["bed", "Oven"])[0] == [str(both)]
    assert hits(amenity=["bed"], any=["oven", "sink"])[0] == [str(both)]
    assert hits(any=["bed"], min_score=0.55)[0] == [str(only_bed)]
    r = client.get("/search", params={"amenity": "hammock"})
    assert r.status_code == 422 and "unknown amenity" in r.text


def test_favicon_static_files_and_offline_api_docs(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert client.get("/static/site.css").status_code == 200
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/").text
    docs = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs) + re.findall(r"url: '([^']+)'", docs)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_the_api_still_uploads_all_or_nothing(client):
    """The page's per-file uploads do not change the REST endpoint's all-or-nothing contract."""
    listing_id = page_create(client)
    r = client.post(
        f"/api/v1/listings/{listing_id}/photos",
        files=[("files", ("a.jpg", jpeg(seed=1), "image/jpeg")), ("files", ("b.txt", b"text", "text/plain"))],
        headers=HEADERS,
    )
    assert r.status_code == 415 and _photo_ids(client, listing_id) == []


def test_the_next_page_link_keeps_the_whole_query():
    from roomscan.api.web import query_url

    url = query_url(
        "/search", amenity=["bed", "oven"], any=["sink"], min_score=None, confirmed_only=True, after=7
    )
    assert url == "/search?amenity=bed&amenity=oven&any=sink&confirmed_only=true&after=7"
    assert query_url("/search", amenity=[], confirmed_only=False) == "/search"
