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


# Lines as OCR really reads them from receipts of several countries: (header lines..., expected fields).
def _receipt(*head: str | tuple[str, str], body=(("Coffee", "3.50"),), total=("TOTAL", "3.50")) -> list[Line]:
    return lines("SHOP", *head, *body, total)


@pytest.mark.parametrize(
    ("head", "expected_date", "expected_time"),
    [
        (("14/06/202511:47",), date(2025, 6, 14), time(11, 47)),  # the space between date and time lost
        (("2025-11-2007:12",), date(2025, 11, 20), time(7, 12)),
        (("22/09/2510: 53",), date(2025, 9, 22), time(10, 53)),  # two-digit year, glued, space after colon
        (("Jul 16, 2025 11:47",), date(2025, 7, 16), time(11, 47)),
        (("16 Jul 2025",), date(2025, 7, 16), None),
        (("16. Juli 2025 10:05",), date(2025, 7, 16), time(10, 5)),
        (("16 juil. 2025",), date(2025, 7, 16), None),
        (("16.07.25",), date(2025, 7, 16), None),
        (("16.07.2025",), date(2025, 7, 16), None),
        (("07/16/2025",), date(2025, 7, 16), None),  # month first: the day is over 12
        (("2025-07-16",), date(2025, 7, 16), None),
        (("Date: 17.07.24", "Time: 9:05"), date(2024, 7, 17), time(9, 5)),
    ],
)
def test_dates_and_times_as_ocr_reads_them(head, expected_date, expected_time):
    r = _receipt(*head)
    got = extract_fields(r)
    assert (got.date, got.time) == (expected_date, expected_time)
    assert [i.name for i in got.items] == ["Coffee"]  # a date's digits ("17.07") are never a price


@pytest.mark.parametrize(
    ("address", "date_order", "expected"),
    [
        ("Springfield, IL 62701", None, date(2025, 3, 4)),  # a US address: month first
        ("10115 Berlin", None, date(2025, 4, 3)),  # a German one: day first
        ("Tel +44 20 7946 0018", None, date(2025, 4, 3)),  # a UK phone number
        ("10115 Berlin", "mdy", date(2025, 3, 4)),  # --date-order overrides the receipt's country
    ],
)
def test_ambiguous_dates_follow_the_country_unless_overridden(address, date_order, expected):
    r = extract_fields(_receipt(address, "03/04/2025 12:00"), date_order=date_order)
    assert r.date == expected
    assert r.confidence["date"] < 0.9 or date_order is not None  # a guess from the country is less certain


@pytest.mark.parametrize(
    ("head", "body", "total", "expected"),
    [
        ((), (("Coffee", "CHF 3.50"),), ("TOTAL", "CHF 3.50"), "CHF"),
        ((), (("Coffee", "3,50 EUR"),), ("SUMME", "3,50 EUR"), "EUR"),
        ((), (("Coffee", "3,50"),), ("TOTAL EUR", "3,50"), "EUR"),  # the code only on the total line
        (("10115 Berlin",), (("Coffee", "3,50"),), ("SUMME", "3,50"), "EUR"),  # no sign: the country's
        (("8001 Zürich",), (("Coffee", "3.50"),), ("TOTAL", "3.50"), "CHF"),
        (("Tel +41 44 123 45 67",), (("Coffee", "3.50"),), ("TOTAL", "3.50"), "CHF"),
        (("Toronto, ON M5V 2T6",), (("Coffee", "$3.50"),), ("TOTAL", "$3.50"), "CAD"),  # "$" in Canada
        (("Austin, TX 78701",), (("Coffee", "3.50"),), ("TOTAL", "3.50"), "USD"),
        ((), (("Coffee", "3.50"),), ("TOTAL", "3.50"), None),  # no sign, no country: no currency
    ],
)
def test_currency_from_codes_signs_and_the_merchants_country(head, body, total, expected):
    r = extract_fields(_receipt(*head, body=body, total=total))
    assert r.currency == expected
    assert r.total == Decimal("3.50")


@pytest.mark.parametrize(
    "reference",
    [
        "Receipt 74632",
        "Receipt #: 000123",
        ("Invoice 2025.06", ""),  # an invoice number shaped like a price
        "Cashier: Anna",
        "Table 4",
        "Order #123",
        ("Till 3", "Trans 52273"),
        ("Bon-Nr. 4711", "Kasse 02,13"),
        "Tisch 22",
        "Scontrino n. 45",
        "Le atendió: Anna",
    ],
)
def test_reference_lines_are_not_items_nor_the_address(reference):
    r = extract_fields(
        lines(
            "GREEN LEAF CAFE",
            "12 Main St",
            reference,
            ("Date: 03/04/2025", "12:00"),
            reference,
            "Bagel",
            ("  2 @ 2.25", "4.50"),
            ("Coffee", "3.50"),
            ("SUBTOTAL", "8.00"),
            ("TOTAL", "8.00"),
        )
    )
    assert [(i.name, i.quantity, i.amount) for i in r.items] == [
        ("Bagel", 2, Decimal("4.50")),
        ("Coffee", 1, Decimal("3.50")),
    ]
    assert r.address == "12 Main St"
    assert r.check.items_match_subtotal is True


@pytest.mark.parametrize(
    ("rows", "expected_total", "expected_subtotal"),
    [
        # "$62.80" read as "862.80" on the TOTAL line: subtotal + tax agree with 62.80
        (
            [("Soup", "$50.00"), ("SUBTOTAL", "$58.00"), ("TAX", "$4.80"), ("TOTAL", "862.80")],
            "62.80",
            "58.00",
        ),
        # ...and on the subtotal line: the items agree with 58.00
        (
            [("Soup", "$50.00"), ("SUBTOTAL", "858.00"), ("TAX", "$4.80"), ("TOTAL", "$62.80")],
            "62.80",
            "58.00",
        ),
        # "$" read as "5" with no subtotal printed: the items and tax agree
        ([("Soup", "$50.00"), ("TAX", "$4.80"), ("TOTAL", "562.80")], "62.80", None),
    ],
)
def test_a_currency_sign_read_as_a_digit_is_dropped_when_the_arithmetic_agrees(
    rows, expected_total, expected_subtotal
):
    r = extract_fields(lines("DINER", ("Date: 03/04/2025", "12:00"), ("Pie", "$8.00"), *rows))
    assert r.total == Decimal(expected_total)
    assert r.subtotal == (Decimal(expected_subtotal) if expected_subtotal else None)
    assert r.check.total_ok is True
    assert any("currency sign read as a digit" in note for note in r.check.notes)  # said, not hidden


def test_a_leading_digit_is_kept_without_arithmetic_evidence():
    # 862.80 might really be the total: nothing else on the receipt says otherwise, so nothing changes
    r = extract_fields(lines("DINER", ("Pie", "$8.00"), ("TAX", "$4.80"), ("TOTAL", "862.80")))
    assert r.total == Decimal("862.80") and r.check.total_ok is False
    # and a receipt that adds up is never touched, even where a leading 8 could be a sign
    r = extract_fields(lines("DINER", ("Pie", "$800.00"), ("TOTAL", "$800.00")))
    assert r.total == Decimal("800.00") and r.check.total_ok is True


@pytest.mark.parametrize(
    ("label", "amount"),
    [("ZWISCHENSUMME", "subtotal"), ("SOUS - TOTAL", "subtotal"), ("SUBTOTALE", "subtotal"),
     ("SUMME", "total"), ("TOTALE", "total"), ("TOTAL TTC", "total"), ("TOTALA PAGAR", "total"),
     ("NET A PAYER", "total"), ("GESAMT", "total"), ("MWST 19%", "tax"), ("TVA 20%", "tax"), ("IVA 22%", "tax")],
)  # fmt: skip
def test_summary_keywords_in_several_languages(label, amount):
    r = extract_fields(lines("SHOP", ("Coffee", "10,00"), (label, "7,00")))
    got = {"subtotal": r.subtotal, "total": r.total, "tax": r.tax}
    assert got[amount] == Decimal("7.00")
    assert [i.name for i in r.items] == ["Coffee"]


def test_a_decimal_point_ocr_lost_is_restored_only_when_the_arithmetic_agrees():
    r = extract_fields(
        lines(
            "SHOP",
            ("Date: 03/04/2025", "12:00"),
            ("Tea", "793"),
            ("Soup", "5.00"),
            ("SUBTOTAL", "12.93"),
            ("TAX 5%", "065"),
            ("TOTAL", "13.58"),
        )
    )
    assert [i.amount for i in r.items] == [Decimal("7.93"), Decimal("5.00")]
    assert r.tax == Decimal("0.65") and r.check.total_ok is True and r.check.items_match_subtotal is True
    assert sum("decimal point OCR lost" in n for n in r.check.notes) == 2
    # without a subtotal to agree with, "Tea | 793" stays unread: no price is made up
    r = extract_fields(
        lines("SHOP", ("Date: 03/04/2025", "12:00"), ("Tea", "793"), ("Soup", "5.00"), ("TOTAL", "5.00"))
    )
    assert [i.amount for i in r.items] == [Decimal("5.00")]
