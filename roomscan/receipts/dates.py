"""Dates and times as receipts print them and OCR reads them.

Numeric dates in any order (``14/06/2025``, ``06/14/2025``, ``14.06.25``, ``2025-06-14``), named months in English,
German, French, Italian and Spanish (``16 Jul 2025``, ``Jul 16, 2025``, ``16. Juli 2025``, ``16 juil. 2025``),
two-digit years, and a time glued to the date where OCR lost the space (``14/06/202511:47``, ``2025-11-2007:12``).
A numeric date with both parts 12 or under is ambiguous: an explicit order wins, then the receipt's evidence
(:func:`roomscan.receipts.region.date_order` of its country), then day-first for dotted dates, else month-first.

Example:
    >>> parse_date("14/06/202511:47")
    datetime.date(2025, 6, 14)
    >>> parse_time("14/06/202511:47")
    datetime.time(11, 47)
    >>> parse_date("03/04/2025", evidence="dmy")
    datetime.date(2025, 4, 3)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time

__all__ = ["DateMatch", "find_date", "is_ambiguous", "parse_date", "parse_time"]

_MONTH_NAMES = {
    1: "jan january januar janv janvier gen gennaio ene enero",
    2: "feb february februar fév fev févr fevr février fevrier febbraio febrero",
    3: "mar march mär maer mrz märz maerz mars marzo",
    4: "apr april avr avril aprile abr abril",
    5: "may mai maggio mag mayo",
    6: "jun june juni juin giu giugno junio",
    7: "jul july juli juil juillet lug luglio julio",
    8: "aug august aoû aou août aout ago agosto",
    9: "sep sept september septembre set settembre septiembre",
    10: "oct october okt oktober octobre ott ottobre octubre",
    11: "nov november novembre noviembre",
    12: "dec december dez dezember déc décembre decembre dic dicembre diciembre",
}
MONTHS = {name: number for number, names in _MONTH_NAMES.items() for name in names.split()}
_MONTH = r"(?P<mon>[A-Za-zÀ-ÿ]{3,9})\.?"
# A year, or a year with a time glued after it ("202511:47", "2511:47"): the glued form is tried first.
_YEAR = r"(?P<year>\d{4}(?=[0-2]?\d[:h.]\s?[0-5]\d)|\d{2}(?=[0-2]?\d[:h]\s?[0-5]\d)|\d{4}(?!\d)|\d{2}(?!\d))"
_DAY_LAST = r"(?P<d2>\d{2}(?=[0-2]?\d[:h]\s?[0-5]\d)|[0-3]?\d(?!\d))"
_PATTERNS = (
    # 2025-06-14, 2025/6/14, 2025-11-2007:12 (ISO order is never ambiguous)
    re.compile(r"(?<!\d)(?P<y4>(?:19|20)\d{2})[/.\-](?P<m>[01]?\d)[/.\-]" + _DAY_LAST),
    # 14/06/2025, 06-14-25, 14.06.202511:47
    re.compile(r"(?<![\d.,])(?P<a>\d{1,2})(?P<sep>[/.\-])(?P<b>\d{1,2})(?P=sep)" + _YEAR),
    # 16 Jul 2025, 16-JUL-25, 16. Juli 2025
    re.compile(r"(?<!\d)(?P<d>[0-3]?\d)\.?[\s\-/]*" + _MONTH + r"[\s\-/,]*" + _YEAR),
    # Jul 16, 2025, July 16 2025
    re.compile(r"(?<![A-Za-zÀ-ÿ])" + _MONTH + r"\s*(?P<d>[0-3]?\d)(?:st|nd|rd|th)?,?\s+" + _YEAR),
)
_TIME = re.compile(
    r"(?<![\d:.,])(?P<h>[01]?\d|2[0-3])(?P<sep>[:h])\s?(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?(?!\d)"
    r"\s*(?P<ampm>[ap]\.?m\.?)?(?![A-Za-z])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DateMatch:
    """A date found in a line: the date, where it ends, and whether its day/month order was a guess."""

    value: date
    start: int
    end: int
    ambiguous: bool


def _year(text: str) -> int:
    year = int(text)
    return year if len(text) == 4 else 2000 + year if year < 80 else 1900 + year


def _safe(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day) if 1990 <= year <= 2100 else None
    except ValueError:
        return None


def find_date(text: str, prefer: str | None = None, evidence: str | None = None) -> DateMatch | None:
    """The first date in ``text``; see the module docstring for the forms and how ambiguity is settled.

    Args:
        prefer: ``"dmy"`` or ``"mdy"``: the user's order for ambiguous numeric dates (``--date-order``).
        evidence: the receipt's own hint (``"dmy"``/``"mdy"``), used when ``prefer`` is ``None``.
    """
    found: list[tuple[int, DateMatch]] = []
    for kind, pattern in enumerate(_PATTERNS):
        for m in pattern.finditer(text):
            hit = _build(kind, m, prefer, evidence)
            if hit is not None:
                found.append((m.start(), hit))
                break
    return min(found, key=lambda f: f[0])[1] if found else None


def _build(kind: int, m: re.Match[str], prefer: str | None, evidence: str | None) -> DateMatch | None:
    g = m.groupdict()
    if kind == 0:
        value = _safe(int(g["y4"]), int(g["m"]), int(g["d2"]))
        return DateMatch(value, m.start(), m.end(), False) if value else None
    if kind == 1:
        first, second, year = int(g["a"]), int(g["b"]), _year(g["year"])
        ambiguous = first <= 12 and second <= 12 and first != second
        if first > 12:
            order = "dmy"
        elif second > 12:
            order = "mdy"
        else:
            order = prefer or evidence or ("dmy" if g["sep"] == "." else "mdy")
        value = _safe(year, second, first) if order == "dmy" else _safe(year, first, second)
        return DateMatch(value, m.start(), m.end(), ambiguous) if value else None
    month = MONTHS.get(g["mon"].lower())
    if month is None:
        return None
    value = _safe(_year(g["year"]), month, int(g["d"]))
    return DateMatch(value, m.start(), m.end(), False) if value else None


def parse_date(text: str, prefer: str | None = None, evidence: str | None = None) -> date | None:
    """The first date in ``text`` as a :class:`datetime.date`, else ``None``; see :func:`find_date`."""
    hit = find_date(text, prefer, evidence)
    return hit.value if hit else None


def is_ambiguous(text: str) -> bool:
    """Whether the first date in ``text`` is numeric with day and month both 12 or under (03/04/2025)."""
    hit = find_date(text)
    return bool(hit and hit.ambiguous)


def parse_time(text: str) -> time | None:
    """The first time of day in ``text`` (``11:47``, ``2:15 PM``, ``14h30``), also glued after a date.

    A time needs a colon or ``h`` between hours and minutes, so prices (``12.50``) are never read as times.
    """
    hit = find_date(text)
    rest = text[hit.end :] if hit else text
    # a date's own digits are not a time; a time glued to the date starts right where the date ends
    if hit and (glued := re.match(r"([01]?\d|2[0-3])[:h]\s?([0-5]\d)", rest)):
        return time(int(glued.group(1)), int(glued.group(2)))
    for m in _TIME.finditer(rest):
        hour, minute, second = int(m.group("h")), int(m.group("m")), int(m.group("s") or 0)
        ampm = (m.group("ampm") or "").lower().replace(".", "")
        if m.group("sep").lower() == "h" and not (
            hit or re.search(r"\b(heure|uhr|time|at)\b", text, re.IGNORECASE)
        ):
            continue  # "2h30" alone is too often something else
        if ampm == "pm" and hour < 12:
            hour += 12
        elif ampm == "am" and hour == 12:
            hour = 0
        return time(hour, minute, second)
    return None
