"""Every bad input gets a clear 4xx naming the problem; the server keeps answering; nothing stored is lost."""

from __future__ import annotations

import io

import pytest
from api_helpers import API_KEY, HEADERS, jpeg, make_listing, upload
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


@pytest.mark.parametrize(("headers", "code"), [({}, 401), ({"X-API-Key": "wrong"}, 401), ({"X-API-Key": ""}, 401)])
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


def test_an_old_raw_key_cookie_authorises_nothing_and_is_deleted(client):
    client.cookies.set("roomscan_api_key", API_KEY)  # what the page kept before sessions
    r = client.post("/listings", data={"title": "Loft"})
    assert r.status_code == 401 and "Sign in with an API key first" in r.text
    assert 'id="signin-link"' in r.text
    assert "roomscan_api_key" in r.headers.get("set-cookie", "")  # and the old cookie is deleted
    assert client.get("/api/v1/listings").json()["listings"] == []



# The catalog's ids are SQL INTEGER: PostgreSQL's int4 ends at 2**31 - 1, SQLite's at 2**63 - 1. Past the end, an
# id is invalid input (422 naming the parameter), not a driver overflow (500); the largest id is just not found.
TOO_LARGE_IDS = [
    "/api/v1/listings/2147483648",
    "/api/v1/listings/9223372036854775808",
    "/api/v1/listings/2147483648/amenities",
    "/api/v1/photos/2147483648",
    "/api/v1/photos/2147483648/image",
    "/api/v1/photos/99999999999999999999999/annotated",
    "/api/v1/search?amenity=bed&after=2147483648",
    "/api/v1/listings?offset=9223372036854775808",
    "/listings/2147483648",
    "/photos/2147483648",
    "/photos/2147483648/160.jpg",
    "/search?amenity=bed&after=9223372036854775808",
]


@pytest.mark.parametrize("url", TOO_LARGE_IDS)
def test_an_id_past_what_the_catalog_holds_is_refused_as_invalid(client, url):
    r = client.get(url)
    assert r.status_code == 422, r.text
    assert "less than or equal to 2147483647" in (r.json()["detail"] if url.startswith("/api/") else r.text)


LARGEST_IDS = ["/api/v1/listings/2147483647", "/api/v1/photos/2147483647", "/listings/2147483647", "/photos/2147483647"]


@pytest.mark.parametrize("url", LARGEST_IDS)
def test_the_largest_id_reaches_the_catalog_and_is_not_found(client, url):
    assert client.get(url).status_code == 404


def test_writes_with_an_id_past_the_end_are_refused_before_anything_runs(client):
    assert client.delete("/api/v1/listings/2147483648", headers=HEADERS).status_code == 422
    r = client.patch("/api/v1/listings/2147483648", json={"title": "x"}, headers=HEADERS)
    assert r.status_code == 422 and "listing_id" in r.json()["detail"]
    assert upload(client, 2147483648, ("a.jpg", jpeg())).status_code == 422
    r = client.post("/listings/2147483648/photos/2147483648/delete", data={"api_key": API_KEY})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")


# Text no database can store: NUL (PostgreSQL text refuses it) and a lone surrogate (no UTF-8 for it; it
# arrives as a JSON "\ud800" escape). Each is a 422 that says so, in a body that is valid UTF-8 JSON.
ODD_TEXT = [
    ("post", "/api/v1/listings", b'{"title": "Loft\\u0000"}', "NUL"),
    ("post", "/api/v1/listings", b'{"title": "Loft \\ud800"}', "unicode"),
    ("post", "/api/v1/listings", b'{"title": "Loft", "claimed_amenities": ["bed\\u0000"]}', "NUL"),
    ("post", "/api/v1/listings", b'{"title": "Loft", "claimed_amenities": ["\\udfff"]}', "unicode"),
    ("patch", "/api/v1/listings/{id}", b'{"title": "\\u0000"}', "NUL"),
    ("patch", "/api/v1/listings/{id}", b'{"claimed_amenities": ["oven", "\\ud83d"]}', "unicode"),
    # A field whose very name is a lone surrogate (pydantic's own message; the body must not echo it raw).
    ("post", "/api/v1/listings", b'{"title": "Loft", "\\ud800": 1}', "unicode"),
]


@pytest.mark.parametrize(("method", "path", "body", "message"), ODD_TEXT)
def test_text_no_database_can_store_is_refused_clearly(client, method, path, body, message):
    listing_id = make_listing(client, title="Villa")
    r = client.request(
        method,
        path.format(id=listing_id),
        content=body,
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    r.content.decode("utf-8")  # the answer itself is valid UTF-8
    assert message.lower() in r.json()["detail"].lower()
    assert client.get(f"/api/v1/listings/{listing_id}").json()["title"] == "Villa"


@pytest.mark.parametrize("value", ["bed\x00", "\x00"])
def test_nul_in_a_query_or_path_string_is_refused(client, value):
    r = client.get("/api/v1/search", params={"amenity": value})
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    listing_id = make_listing(client)
    r = client.put(
        f"/api/v1/listings/{listing_id}/amenities/{value.replace(chr(0), '%00')}/decision",
        json={"decision": "confirmed"},
        headers=HEADERS,
    )
    assert r.status_code == 422 and "NUL" in r.json()["detail"]


def test_a_nul_title_typed_into_the_page_form_is_refused_with_a_page(client):
    r = client.post("/listings", data={"title": "Loft\x00", "api_key": API_KEY})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "NUL" in r.text
    assert client.get("/api/v1/listings").json()["listings"] == []


def test_every_validation_error_is_a_problem_with_each_issue_listed(client):
    r = client.post("/api/v1/listings", json={"claimed_amenities": "bed", "extra": 1}, headers=HEADERS)
    assert r.status_code == 422
    body = r.json()
    assert isinstance(body["detail"], str) and "title: Field required" in body["detail"]
    assert {tuple(e["loc"]) for e in body["errors"]} == {
        ("body", "title"),
        ("body", "claimed_amenities"),
        ("body", "extra"),
    }
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])  # the input is not echoed


def test_the_openapi_document_names_one_error_body_for_every_error_status(client):
    doc = client.get("/openapi.json").json()
    problem = {"$ref": "#/components/schemas/Problem"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    documented = set()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if int(code) >= 400 and path.startswith("/api/v1/"):
                    assert response["content"]["application/json"]["schema"] == problem, (method, path, code)
                    documented.add(int(code))
    assert documented == {400, 401, 403, 404, 413, 415, 422, 429, 503}
    upload_op = doc["paths"]["/api/v1/listings/{listing_id}/photos"]["post"]
    assert {"401", "403", "404", "413", "415", "422", "429", "503"} <= set(upload_op["responses"])


def test_a_nul_in_an_uploaded_file_name_is_cleaned_not_stored(client):
    listing_id = make_listing(client)
    part = b'Content-Disposition: form-data; name="files"; filename="room\x00.jpg"\r\nContent-Type: image/jpeg'
    body = b"--B\r\n" + part + b"\r\n\r\n" + jpeg(seed=3) + b"\r\n--B--\r\n"
    r = client.post(
        f"/api/v1/listings/{listing_id}/photos",
        content=body,
        headers={**HEADERS, "Content-Type": "multipart/form-data; boundary=B"},
    )
    assert r.status_code == 202, r.text
    assert r.json()["photos"][0]["filename"] == "room_.jpg"
