"""Money as receipts print it: amounts with either decimal mark, currency symbols and ISO codes on either side.

Example:
    >>> parse_amount("CHF 12.50"), parse_amount("12,50 EUR"), parse_amount("Coffee  $3.50")
    ((Decimal('12.50'), 'CHF'), (Decimal('12.50'), 'EUR'), (Decimal('3.50'), 'USD'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = ["CODES", "Amount", "find_amount", "parse_amount", "symbol_currency"]

CODES = (
    "USD", "EUR", "GBP", "CHF", "CAD", "AUD", "NZD", "JPY", "SEK", "NOK", "DKK", "PLN", "CZK", "MXN", "INR",
    "SGD", "HKD",
)  # fmt: skip
# A symbol's currency when the receipt's country does not say otherwise ("$" in Canada is CAD).
_SYMBOLS = {
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "fr.": "CHF",
    "sfr.": "CHF",
    "euro": "EUR",
}
_DOLLAR_COUNTRIES = {"CA": "CAD", "AU": "AUD", "NZ": "NZD", "SG": "SGD", "HK": "HKD", "MX": "MXN"}
_CUR = r"(?:[$€£¥₹]|(?<![A-Za-z])(?:" + "|".join(CODES) + r"|S?Fr\.|EURO)(?![A-Za-z]))"
_MONEY = re.compile(
    r"(?P<sign>-)?(?P<pre>" + _CUR + r")?\s?"
    r"(?P<num>\d{1,3}(?:[,. ]\d{3})*[.,]\d{2}|\d+[.,]\d{2})(?![\d%])(?:\s?(?P<post>" + _CUR + r"))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Amount:
    """An amount as printed: its value, its currency (from a symbol or code), and how it was written."""

    value: Decimal
    currency: str | None
    digits: str  # the number as read ("862.80"), for repairs that need the printed digits
    symbol: str | None  # the symbol or code as printed, if any
    prefix: bool  # whether the symbol stood before the number


def symbol_currency(symbol: str, country: str | None = None) -> str | None:
    """The ISO 4217 code a printed symbol or code stands for, given the receipt's country."""
    s = symbol.strip().lower()
    if s.upper() in CODES:
        return s.upper()
    if s == "$" and country in _DOLLAR_COUNTRIES:
        return _DOLLAR_COUNTRIES[country]
    return _SYMBOLS.get(s)


def to_decimal(digits: str) -> Decimal | None:
    """``1,234.56`` / ``1.234,56`` / ``12,50`` as a Decimal: the last separator before two digits is the point."""
    digits = digits.replace(" ", "")
    head, tail = re.sub(r"[.,]", "", digits[:-3]), digits[-2:]
    try:
        return Decimal(f"{head or 0}.{tail}")
    except InvalidOperation:
        return None


def find_amount(text: str) -> Amount | None:
    """The right-most money amount in ``text``, else ``None``."""
    found = list(_MONEY.finditer(text))
    if not found:
        return None
    m = found[-1]
    value = to_decimal(m.group("num"))
    if value is None:
        return None
    if m.group("sign"):
        value = -value
    symbol = m.group("pre") or m.group("post")
    return Amount(
        value=value,
        currency=symbol_currency(symbol) if symbol else None,
        digits=m.group("num").replace(" ", ""),
        symbol=symbol,
        prefix=bool(m.group("pre")),
    )


def parse_amount(text: str) -> tuple[Decimal, str | None] | None:
    """The right-most money amount in ``text`` and its currency (from a symbol or code), else ``None``."""
    amount = find_amount(text)
    return (amount.value, amount.currency) if amount else None
