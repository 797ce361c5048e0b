"""Every bad input gets a clear 4xx naming the problem; the server keeps answering; nothing stored is lost."""

from __future__ import annotations

import io

import pytest
from api_helpers import HEADERS, jpeg, make_listing, upload
from PIL import Image


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def corrupt_jpeg() -> bytes:
    data = bytearray(jpeg(seed=9))
    data[4:80] = b"\x00" * 76
    return bytes(data)


def truncated_png() -> bytes:
    data = _png(Image.effect_noise((128, 128), 60).convert("RGB"))
    return data[: len(data) // 2]


BAD_FILES = [
    ("corrupt.jpg", corrupt_jpeg(), 422, "corrupt"),
    ("truncated.png", truncated_png(), 422, "truncated"),
    ("empty.jpg", b"", 422, "empty"),
    ("notes.jpg", b"these are my notes, not a photo\n" * 10, 415, "not an image"),
    ("bomb.png", _png(Image.new("1", (20000, 20000))), 413, "megapixels"),
]


def _stored_state(client, listing_id):
    return client.get(f"/api/v1/listings/{listing_id}").json()["photo_ids"]


@pytest.mark.parametrize(("name", "data", "code", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_photo_is_refused_clearly_and_nothing_is_half_written(client, services, name, data, code, message):
    listing_id = make_listing(client)
    good = upload(client, listing_id, ("good.jpg", jpeg(seed=1))).json()["photos"][0]["photo_id"]
    # A bad file in a request with a good one: the whole request is refused, nothing of it stored.
    r = upload(client, listing_id, ("another-good.jpg", jpeg(seed=2)), (name, data))
    assert r.status_code == code, r.text
    assert name in r.json()["detail"] and message in r.json()["detail"]
    assert _stored_state(client, listing_id) == [good]
    assert services.worker.pending_count() == 1
    assert client.get("/healthz").status_code == 200


def test_upload_over_the_size_limit(client, settings):
    listing_id = make_listing(client)
    big = b"\xff\xd8\xff\xe0" + b"\x00" * (settings.max_upload_bytes + 10)
    r = upload(client, listing_id, ("huge.jpg", big))
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # A request body over the whole-request cap is refused before it is read.
    r = upload(client, listing_id, *[(f"{i}.jpg", big) for i in range(5)])
    assert r.status_code == 413 and "larger than the server accepts" in r.json()["detail"]
    assert _stored_state(client, listing_id) == []


def test_type_is_sniffed_from_bytes_not_name(client):
    listing_id = make_listing(client)
    r = upload(client, listing_id, ("photo.txt", jpeg(seed=7)))  # a JPEG named .txt is fine
    assert r.status_code == 202


def test_path_traversal_in_filename_is_reduced_to_a_label(client, services):
    listing_id = make_listing(client)
    r = upload(client, listing_id, ("../../../etc/passwd.jpg", jpeg(seed=8)))
    assert r.status_code == 202 and r.json()["photos"][0]["filename"] == "passwd.jpg"
    for path in services.photos.root.rglob("*"):
        assert path.resolve().is_relative_to(services.photos.root.resolve())


def test_unknown_listing(client):
    assert client.get("/api/v1/listings/999").status_code == 404
    assert "listing 999 does not exist" in client.get("/api/v1/listings/999/amenities").json()["detail"]
    r = upload(client, 999, ("a.jpg", jpeg()))
    assert r.status_code == 404
    assert client.get("/api/v1/photos/999/annotated").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "JSON"),
        (b'{"title": ""}', "title"),
        (b'{"claimed_amenities": ["bed"]}', "title: Field required"),
        (b'{"title": "x", "claimed_amenities": "bed"}', "claimed_amenities"),
        (b'{"title": "x", "unexpected": 1}', "unexpected"),
    ],
)
def test_malformed_json(client, body, message):
    r = client.post("/api/v1/listings", content=body, headers={**HEADERS, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert message in r.json()["detail"]


def test_unknown_claimed_amenity_is_named(client):
    r = client.post("/api/v1/listings", json={"title": "x", "claimed_amenities": ["bedd"]}, headers=HEADERS)
    assert r.status_code == 422 and "unknown amenity 'bedd'" in r.json()["detail"] and "bed" in r.json()["detail"]


@pytest.mark.parametrize(("headers", "code"), [({}, 401), ({"X-API-Key": "wrong"}, 403), ({"X-API-Key": ""}, 401)])
def test_writes_need_the_api_key(client, headers, code):
    assert client.post("/api/v1/listings", json={"title": "x"}, headers=headers).status_code == code
    listing_id = make_listing(client)
    assert upload(client, listing_id, ("a.jpg", jpeg()), headers=headers).status_code == code
    assert client.get("/api/v1/listings").json()["listings"][0]["id"] == listing_id  # reads stay open


@pytest.mark.parametrize(
    "value",
    ["'; DROP TABLE listings; --", "bed' OR '1'='1", "<script>alert(1)</script>", "%00", "../../etc/passwd", "a" * 500],
)
def test_injection_looking_search_strings_are_just_unknown_amenities(client, value):
    listing_id = make_listing(client)
    r = client.get("/api/v1/search", params={"amenity": value})
    assert r.status_code == 422 and "unknown amenity" in r.json()["detail"]
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 200  # the table is still there


@pytest.mark.parametrize(
    "params",
    [{}, {"amenity": "bed", "limit": 0}, {"amenity": "bed", "min_score": 2}, {"amenity": "bed", "after": "x"}],
)
def test_bad_search_parameters(client, params):
    assert client.get("/api/v1/search", params=params).status_code == 422


def test_the_web_page_answers_an_unknown_listing_with_a_page(client):
    r = client.get("/listings/999")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "listing 999 does not exist" in r.text


def test_a_refused_key_cookie_is_forgotten_so_the_form_asks_again(client):
    client.cookies.set("roomscan_api_key", "key-from-an-earlier-run")
    r = client.post("/listings", data={"title": "Loft"})
    assert r.status_code == 403 and "wrong API key" in r.text
    assert 'name="api_key"' in r.text  # the key field is shown again
    assert "roomscan_api_key" in r.headers.get("set-cookie", "")  # and the stale cookie is deleted

