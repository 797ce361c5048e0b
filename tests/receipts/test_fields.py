from __future__ import annotations

from datetime import date, time
from decimal import Decimal

import pytest

from roomscan.receipts.fields import extract_fields, parse_amount, parse_date
from roomscan.receipts.layout import Line
from roomscan.receipts.ocr import Word


def lines(*rows: str | tuple[str, str], conf: float = 0.95) -> list[Line]:
    out = []
    for y, row in enumerate(rows):
        cells = (row,) if isinstance(row, str) else row
        words = tuple(
            Word(c, (i * 300.0, y * 30.0, i * 300.0 + 100, y * 30.0 + 20), conf) for i, c in enumerate(cells)
        )
        out.append(Line(words, tuple(cells)))
    return out


RECEIPT = lines(
    "GREEN LEAF CAFE",
    "12 Main St",
    "Springfield, IL 62701",
    "Tel (217) 555-0142",
    ("Date: 03/04/2024", "Time: 2:15 PM"),
    ("Coffee", "$3.50"),
    "Bagel",
    ("  2 @ $2.25", "$4.50"),
    ("3 x Tea", "$6.00"),
    ("SUBTOTAL", "$14.00"),
    ("TAX 8%", "$1.12"),
    ("TIP", "$2.00"),
    ("TOTAL", "$17.12"),
    ("VISA", "$17.12"),
)


def test_reads_every_field_of_a_consistent_receipt():
    r = extract_fields(RECEIPT)
    assert (r.merchant, r.phone, r.currency, r.payment_method) == (
        "GREEN LEAF CAFE",
        "(217) 555-0142",
        "USD",
        "visa",
    )
    assert r.address == "12 Main St, Springfield, IL 62701"
    assert (r.date, r.time) == (date(2024, 3, 4), time(14, 15))
    assert [(i.name, i.quantity, i.unit_price, i.amount) for i in r.items] == [
        ("Coffee", 1, Decimal("3.50"), Decimal("3.50")),
        ("Bagel", 2, Decimal("2.25"), Decimal("4.50")),
        ("Tea", 3, Decimal("2.00"), Decimal("6.00")),
    ]
    assert (r.subtotal, r.tax, r.tip, r.total) == (
        Decimal("14.00"),
        Decimal("1.12"),
        Decimal("2.00"),
        Decimal("17.12"),
    )
    assert r.taxes[0].rate == Decimal(8)
    assert r.check.items_match_subtotal is True and r.check.total_ok is True
    assert r.confidence["total"] > 0.9


def test_a_total_that_does_not_add_up_is_reported_not_corrected():
    bad = [*RECEIPT[:-2], *lines(("TOTAL", "$19.99"))]
    r = extract_fields(bad)
    assert r.total == Decimal("19.99")
    assert r.check.total_ok is False and r.check.expected_total == Decimal("17.12")
    assert r.confidence["total"] < 0.9
    assert any("19.99" in note for note in r.check.notes)


def test_never_invents_a_total():
    r = extract_fields([line for line in RECEIPT if not line.text.startswith(("TOTAL", "VISA"))])
    assert r.total is None and r.confidence["total"] == 0.0
    assert r.subtotal == Decimal("14.00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$12.50", (Decimal("12.50"), "USD")),
        ("12,50 €", (Decimal("12.50"), "EUR")),
        ("£1,234.56", (Decimal("1234.56"), "GBP")),
        ("1.234,56", (Decimal("1234.56"), None)),
        ("-3.00", (Decimal("-3.00"), None)),
        ("Coffee 2 x 3", None),
    ],
)
def test_parse_amount(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize(
    ("text", "prefer", "evidence", "expected"),
    [
        ("2024-03-05", None, None, date(2024, 3, 5)),
        ("25/12/2024", None, None, date(2024, 12, 25)),  # day > 12: day first, whatever the default
        ("12/25/2024", "dmy", None, date(2024, 12, 25)),  # month > 12 impossible: month first
        ("03/04/2024", None, "dmy", date(2024, 4, 3)),  # ambiguous: the receipt's evidence decides
        ("03/04/2024", "mdy", "dmy", date(2024, 3, 4)),  # an explicit option wins
        ("05.03.24", "dmy", None, date(2024, 3, 5)),
        ("Jul 22, 2025", None, None, date(2025, 7, 22)),
        ("22 Jul 2025", None, None, date(2025, 7, 22)),
        ("99/99/2024", None, None, None),
    ],
)
def test_parse_date(text, prefer, evidence, expected):
    assert parse_date(text, prefer, evidence) == expected


def test_ambiguous_date_follows_another_date_on_the_receipt():
    r = extract_fields(
        lines(
            "SHOP",
            ("Date 03/04/2024", "12:00"),
            ("Item", "1.00"),
            ("TOTAL", "1.00"),
            "Valid until 28/04/2024",
        )
    )
    assert r.date == date(2024, 4, 3)


def test_european_currency_means_day_first():
    r = extract_fields(lines("SHOP", "Date 03/04/2024", ("Item", "1,00 €"), ("TOTAL", "1,00 €")))
    assert r.date == date(2024, 4, 3) and r.currency == "EUR"


def test_colon_misread_as_decimal_point_is_fixed_next_to_a_symbol():
    r = extract_fields(
        lines("SHOP", ("Date: 2024-01-02", "Time: 10:17"), ("Bananas", "2:91€"), ("TOTAL", "2.91 €"))
    )
    assert r.items[0].amount == Decimal("2.91") and r.time == time(10, 17)


def test_to_dict_is_json_ready():
    import json

    d = extract_fields(RECEIPT).to_dict()
    assert json.loads(json.dumps(d))["total"] == "17.12"
    assert d["date"] == "2024-03-04" and d["time"] == "14:15"


def test_header_edge_debris_from_the_paper_border_is_dropped():
    from roomscan.receipts.fields import _clean_header

    assert _clean_header("THE BOOK NOOK |") == "THE BOOK NOOK"
    assert _clean_header("| 415 Elm St _") == "415 Elm St"
    assert _clean_header("Joe's Diner") == "Joe's Diner"
