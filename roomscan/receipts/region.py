"""Which country a receipt is from, and what that implies: its currency and how it writes dates.

The evidence is what the header prints: a country name, a phone number's international prefix, a postcode in
the country's shape (``IL 62701``, ``SW1A 1AA``), a known city, a VAT number's country prefix, or a currency that
belongs to one country. Each clue votes; the country with the most votes wins, and a receipt with no clue has
no country (``None``), never a guessed one.

Example:
    >>> guess_country(["GREEN LEAF CAFE", "12 Main St", "Springfield, IL 62701"])
    'US'
    >>> currency_of("CH"), date_order("US"), date_order("DE")
    ('CHF', 'mdy', 'dmy')
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

__all__ = ["COUNTRY_CURRENCY", "currency_of", "date_order", "guess_country"]

COUNTRY_CURRENCY = {
    "US": "USD", "CA": "CAD", "GB": "GBP", "IE": "EUR", "DE": "EUR", "AT": "EUR", "CH": "CHF", "FR": "EUR",
    "BE": "EUR", "NL": "EUR", "LU": "EUR", "IT": "EUR", "ES": "EUR", "PT": "EUR", "FI": "EUR", "GR": "EUR",
    "AU": "AUD", "NZ": "NZD", "JP": "JPY", "SE": "SEK", "NO": "NOK", "DK": "DKK", "PL": "PLN", "CZ": "CZK",
    "MX": "MXN", "IN": "INR", "SG": "SGD", "HK": "HKD",
}  # fmt: skip
# Countries that write numeric dates month first; Japan and the like write the year first (never ambiguous).
MONTH_FIRST = {"US", "PH"}
_CALLING_CODES = {
    "1": "US", "44": "GB", "353": "IE", "49": "DE", "43": "AT", "41": "CH", "33": "FR", "32": "BE", "31": "NL",
    "352": "LU", "39": "IT", "34": "ES", "351": "PT", "358": "FI", "30": "GR", "61": "AU", "64": "NZ", "81": "JP",
    "46": "SE", "47": "NO", "45": "DK", "48": "PL", "420": "CZ", "52": "MX", "91": "IN", "65": "SG", "852": "HK",
}  # fmt: skip
_NAMES = {
    "usa": "US", "united states": "US", "canada": "CA", "united kingdom": "GB", "uk": "GB", "england": "GB",
    "scotland": "GB", "ireland": "IE", "deutschland": "DE", "germany": "DE", "österreich": "AT", "austria": "AT",
    "schweiz": "CH", "suisse": "CH", "svizzera": "CH", "switzerland": "CH", "france": "FR", "belgique": "BE",
    "belgië": "BE", "nederland": "NL", "italia": "IT", "italy": "IT", "españa": "ES", "espana": "ES", "spain": "ES",
    "portugal": "PT", "australia": "AU", "new zealand": "NZ", "japan": "JP", "sverige": "SE", "norge": "NO",
    "danmark": "DK", "polska": "PL", "mexico": "MX", "méxico": "MX", "india": "IN", "singapore": "SG",
}  # fmt: skip
_CITIES = {
    "new york": "US", "los angeles": "US", "chicago": "US", "san francisco": "US", "seattle": "US",
    "boston": "US", "london": "GB", "manchester": "GB", "birmingham": "GB", "leeds": "GB", "glasgow": "GB",
    "edinburgh": "GB", "bristol": "GB", "liverpool": "GB", "dublin": "IE", "cork": "IE", "berlin": "DE",
    "münchen": "DE", "munchen": "DE", "munich": "DE", "hamburg": "DE", "köln": "DE", "koln": "DE", "frankfurt": "DE",
    "stuttgart": "DE", "düsseldorf": "DE", "leipzig": "DE", "dresden": "DE", "wien": "AT", "vienna": "AT",
    "graz": "AT", "salzburg": "AT", "zürich": "CH", "zurich": "CH", "bern": "CH", "basel": "CH", "genève": "CH",
    "geneve": "CH", "geneva": "CH", "lausanne": "CH", "luzern": "CH", "paris": "FR", "lyon": "FR",
    "marseille": "FR", "bordeaux": "FR", "toulouse": "FR", "lille": "FR", "nantes": "FR",
    "bruxelles": "BE", "brussels": "BE", "antwerpen": "BE", "amsterdam": "NL", "rotterdam": "NL",
    "milano": "IT", "milan": "IT", "roma": "IT", "rome": "IT", "firenze": "IT", "torino": "IT", "napoli": "IT",
    "bologna": "IT", "venezia": "IT", "madrid": "ES", "barcelona": "ES", "sevilla": "ES", "valencia": "ES",
    "bilbao": "ES", "málaga": "ES", "lisboa": "PT", "porto": "PT", "sydney": "AU", "melbourne": "AU",
    "toronto": "CA", "vancouver": "CA", "montréal": "CA", "montreal": "CA", "tokyo": "JP",
}  # fmt: skip
_US_STATES = [
    "AL",
    "AK",
    "AZ",
    "AR",
    "CA",
    "CO",
    "CT",
    "DE",
    "FL",
    "GA",
    "HI",
    "ID",
    "IL",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
    "DC",
]
_CA_PROVINCES = ["AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"]
_SINGLE_COUNTRY_CURRENCY = {"USD": "US", "GBP": "GB", "CHF": "CH", "CAD": "CA", "AUD": "AU", "JPY": "JP"}
_US_ZIP = re.compile(r"\b(" + "|".join(_US_STATES) + r")\.?\s+\d{5}(?:-\d{4})?\b")
_CA_POST = re.compile(r"\b(" + "|".join(_CA_PROVINCES) + r")\s+[A-Z]\d[A-Z]\s?\d[A-Z]\d\b")
_UK_POST = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b")
_PHONE_PREFIX = re.compile(r"(?:\+|\b00)\s?(\d{1,3})[\s.\-/(]")
_VAT_ID = re.compile(r"(?i:\b(?:vat|ust|tva|iva|mwst|uid|nif|p\.?\s?iva)\b).{0,14}?\b([A-Z]{2})\s?\d{6}")
_WORD = re.compile(r"[A-Za-zÀ-ÿ]+(?:\s+[A-Za-zÀ-ÿ]+)?")


def guess_country(lines: list[str], currency: str | None = None) -> str | None:
    """The ISO 3166 code of the country the receipt's text points to, or ``None`` without evidence.

    Args:
        lines: the receipt's text lines (the header carries most clues; every line is read).
        currency: a currency already read from symbols or codes; a one-country currency is a clue.
    """
    votes: Counter[str] = Counter()
    for text in lines:
        low = text.lower()
        if _US_ZIP.search(text):
            votes["US"] += 2
        if _CA_POST.search(text):
            votes["CA"] += 2
        if _UK_POST.search(text):
            votes["GB"] += 2
        for m in _PHONE_PREFIX.finditer(text):
            code = next((m.group(1)[:n] for n in (3, 2, 1) if m.group(1)[:n] in _CALLING_CODES), None)
            if code:
                votes[_CALLING_CODES[code]] += 2
        if vat := _VAT_ID.search(text):
            prefix = vat.group(1).upper().replace("EL", "GR")
            if prefix in COUNTRY_CURRENCY:
                votes[prefix] += 2
        words = re.findall(r"[a-zà-ÿ]+", low)
        pairs = [" ".join(p) for p in itertools.pairwise(words)]
        for token in (*words, *pairs):
            if token in _NAMES:
                votes[_NAMES[token]] += 3
            if token in _CITIES:
                votes[_CITIES[token]] += 2
    if currency in _SINGLE_COUNTRY_CURRENCY:
        votes[_SINGLE_COUNTRY_CURRENCY[currency]] += 1
    if not votes:
        return None
    (best, count), *rest = votes.most_common(2) + [("", 0)]
    return best if count > rest[0][1] else None


def currency_of(country: str | None) -> str | None:
    """The ISO 4217 currency of ``country`` (an ISO 3166 code), else ``None``."""
    return COUNTRY_CURRENCY.get(country or "")


def date_order(country: str | None) -> str | None:
    """``"mdy"`` or ``"dmy"``: how ``country`` writes numeric dates; ``None`` for no country."""
    if country is None:
        return None
    return "mdy" if country in MONTH_FIRST else "dmy"
