from __future__ import annotations

import pytest

from roomscan.receipts.region import currency_of, date_order, guess_country


@pytest.mark.parametrize(
    ("lines", "currency", "expected"),
    [
        (["GREEN LEAF CAFE", "12 Main St", "Springfield, IL 62701"], None, "US"),
        (["CORNER MARKET", "Leeds LS1 4DY"], None, "GB"),
        (["MAPLE GROCERY", "Tel +49 30 2234243"], None, "DE"),
        (["GOLDEN WOK", "33000 Bordeaux"], None, "FR"),
        (["BAR", "Via Roma 1", "00184 Roma"], None, "IT"),
        (["SHOP", "USt-IdNr. DE123456789"], None, "DE"),
        (["SHOP", "Toronto, ON M5V 2T6"], None, "CA"),
        (["SHOP", "Have a nice day"], None, None),  # no clue: no country, never a guess
        (["SHOP"], "CHF", "CH"),  # a currency only one country uses
        (["SHOP"], "EUR", None),  # a currency many countries use says nothing alone
    ],
)
def test_guess_country(lines, currency, expected):
    assert guess_country(lines, currency) == expected


def test_country_implies_currency_and_date_order():
    assert (currency_of("CH"), currency_of("DE"), currency_of(None)) == ("CHF", "EUR", None)
    assert (date_order("US"), date_order("GB"), date_order(None)) == ("mdy", "dmy", None)
