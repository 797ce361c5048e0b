"""POST /api/v1/receipts and the /receipts page (Tesseract engine, to keep the suite fast)."""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import unquote

import pytest
from api_helpers import HEADERS
from PIL import Image

from roomscan.receipts.synth import write_receipts


@pytest.fixture(scope="module")
def receipt_file(tmp_path_factory):
    path = write_receipts(tmp_path_factory.mktemp("r"), 1, seed=7, degraded=True)[0]
    return path.read_bytes(), json.loads(path.with_suffix(".json").read_text())


def test_reads_a_receipt(client, receipt_file):
    data, truth = receipt_file
    r = client.post(
        "/api/v1/receipts?engine=tesseract", files=[("file", ("r.jpg", data, "image/jpeg"))], headers=HEADERS
    )
    assert r.status_code == 200, r.text
    (receipt,) = r.json()["receipts"]
    assert receipt["total"] == truth["total"] and receipt["source"] == "r.jpg"
    assert receipt["check"]["total_ok"] is True and 0 <= receipt["confidence"]["total"] <= 1


def _blank() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (300, 400), "white").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("files", "headers", "code", "message"),
    [
        ([("files", ("x.txt", b"hello", "text/plain"))], HEADERS, 415, "not an image"),
        ([], HEADERS, 422, "no files"),
        ([("files", ("r.png", _blank(), "image/png"))], {}, 401, "API key"),
    ],
)
def test_bad_requests_are_clear(client, files, headers, code, message):
    r = client.post(
        "/api/v1/receipts?engine=tesseract",
        files=files or None,
        data={} if not files else None,
        headers=headers,
    )
    assert r.status_code == code and message in r.json()["detail"]


def test_blank_image_gives_no_total(client):
    r = client.post(
        "/api/v1/receipts?engine=tesseract",
        files=[("files", ("b.png", _blank(), "image/png"))],
        headers=HEADERS,
    )
    assert r.status_code == 200 and r.json()["receipts"][0]["total"] is None


def test_page_shows_fields_beside_the_boxed_image(client, receipt_file):
    data, truth = receipt_file
    assert "Receipts" in client.get("/receipts").text
    r = client.post(
        "/receipts",
        files={"file": ("r.jpg", data, "image/jpeg")},
        data={"engine": "tesseract", "api_key": HEADERS["X-API-Key"]},
    )
    assert r.status_code == 200
    assert "data:image/png;base64," in r.text and truth["total"] in r.text


def test_page_without_key_shows_the_error(client, receipt_file):
    r = client.post(
        "/receipts", files={"file": ("r.jpg", receipt_file[0], "image/jpeg")}, data={"engine": "tesseract"}
    )
    assert r.status_code == 401 and "API key" in r.text


def _download(page: str, extension: str) -> tuple[str, str]:
    """(file name, content) of the page's download link for ``extension``."""
    m = re.search(rf'href="data:[^,]+,([^"]+)" download="([^"]+\.{extension})"', page)
    assert m, f"no {extension} download link"
    return m.group(2), unquote(m.group(1))


def test_page_names_fields_for_people_and_offers_json_and_csv_downloads(client, receipt_file):
    data, truth = receipt_file
    r = client.post(
        "/receipts",
        files={"file": ("lunch.jpg", data, "image/jpeg")},
        data={"engine": "tesseract", "api_key": HEADERS["X-API-Key"]},
    )
    assert r.status_code == 200
    page = r.text
    assert "<th>Confidence</th>" in page.replace(' title="How sure the reader is, 0 to 1"', "")
    assert ">Payment method<" in page and ">Subtotal<" in page
    assert "payment_method<" not in page and "subtotal<" not in page  # no JSON keys shown as labels

    name, text = _download(page, "json")
    result = json.loads(text)
    assert name == "lunch.receipt.json"
    assert result["source"] == "lunch.jpg" and result["total"] == truth["total"] and result["items"]

    name, text = _download(page, "csv")
    (row,) = csv.DictReader(io.StringIO(text))
    assert name == "lunch.receipt.csv"
    assert row["file"] == "lunch.jpg" and row["total"] == truth["total"]
    assert row["merchant"] == result["merchant"] and int(row["items"]) == len(result["items"])
