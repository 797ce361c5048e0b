"""Receipt fields from text lines: merchant, address, phone, date/time, currency, items, totals, payment.

Everything here is plain text rules over :class:`~roomscan.receipts.layout.Line`: money is the right-most amount
on a line; keyword lines (SUBTOTAL, TAX, TIP, TOTAL, payment, change) are summary rows; other priced lines between
the header and the summary are items. Arithmetic is cross-checked and the result reported, never used to make up
a missing value: a receipt with no readable TOTAL line has ``total=None``.
"""

from __future__ import annotations

import re
from datetime import date, time
from decimal import Decimal, InvalidOperation

from roomscan.receipts.layout import Line
from roomscan.receipts.result import ArithmeticCheck, LineItem, Receipt, TaxLine

__all__ = ["extract_fields", "parse_amount", "parse_date"]

_MONEY = re.compile(
    r"(?P<sign>-)?(?P<pre>[$€£]|USD|EUR|GBP)?\s?"
    r"(?P<num>\d{1,3}(?:[,. ]\d{3})*[.,]\d{2}|\d+[.,]\d{2})(?!\d)\s?(?P<post>[$€£]|USD|EUR|GBP)?"
)
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "USD": "USD", "EUR": "EUR", "GBP": "GBP"}
_SUBTOTAL = re.compile(r"\bsub[\s\-]?total\b|\bnet\s+amount\b", re.IGNORECASE)
_TOTAL = re.compile(
    r"\b(grand\s+)?total\b|\bamount\s+due\b|\bbalance(\s+due)?\b|\bto\s+pay\b|\bsumme\b", re.IGNORECASE
)
_TAX = re.compile(r"\b(tax|vat|gst|hst|pst|mwst|tva)\b", re.IGNORECASE)
_TIP = re.compile(r"\b(tip|gratuity|service\s+charge)\b", re.IGNORECASE)
_PAYMENTS = {
    "visa": "visa",
    "mastercard": "mastercard",
    "master card": "mastercard",
    "amex": "amex",
    "american express": "amex",
    "debit": "debit",
    "credit": "credit",
    "cash": "cash",
    "apple pay": "apple pay",
    "google pay": "google pay",
    "maestro": "maestro",
}
_PAYMENT = re.compile(r"\b(" + "|".join(_PAYMENTS) + r")\b", re.IGNORECASE)
_NON_ITEM = re.compile(
    r"\b(change|tender(ed)?|card|auth|approval|balance|rounding|discount\s+total)\b", re.IGNORECASE
)
_PHONE = re.compile(r"(\+?\(?\d[\d\s().\-/]{7,}\d)")
_TIME = re.compile(r"\b([01]?\d|2[0-3])[:.]([0-5]\d)(?::([0-5]\d))?\s*([ap]\.?m\.?)?(?![\d.])", re.IGNORECASE)
_NUM_DATE = re.compile(r"\b(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{2,4})\b")
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_TEXT_DATE = re.compile(
    r"\b(?:(\d{1,2})\s+([A-Za-z]{3})[a-z]*\.?,?\s+(\d{4})|([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4}))\b"
)
_QTY_X = re.compile(r"^\s*(\d{1,3})\s*[xX×*]\s*([A-Za-z].+)$")
_QTY_AT = re.compile(r"^\s*(\d{1,3})\s*[@xX×]\s*(.+)$")
_CENT = Decimal("0.01")
_COLON_MONEY = re.compile(r"(?<=[$€£])\s?(\d+):(\d{2})\b|\b(\d+):(\d{2})(?=\s?[$€£])")


def parse_amount(text: str) -> tuple[Decimal, str | None] | None:
    """The right-most money amount in ``text`` and its currency (from a symbol or code), else ``None``."""
    found = list(_MONEY.finditer(text))
    if not found:
        return None
    m = found[-1]
    num = m.group("num").replace(" ", "")
    # "1,234.56" / "1.234,56" / "12,50": the last separator before two digits is the decimal point
    head, tail = num[:-3], num[-2:]
    head = re.sub(r"[.,]", "", head)
    try:
        value = Decimal(f"{head}.{tail}")
    except InvalidOperation:
        return None
    if m.group("sign"):
        value = -value
    symbol = m.group("pre") or m.group("post")
    return value, _SYMBOLS.get(symbol) if symbol else None


def parse_date(text: str, prefer: str | None = None, evidence: str | None = None) -> date | None:
    """The first date in ``text`` as a :class:`datetime.date`.

    Args:
        text: one line.
        prefer: ``"dmy"`` or ``"mdy"`` for ambiguous numeric dates (both parts <= 12); ``None``: ``evidence``.
        evidence: what the rest of the receipt suggests (``"dmy"``/``"mdy"``), used when ``prefer`` is ``None``.
    """
    m = _TEXT_DATE.search(text)
    if m:
        day, mon, year = (
            (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(5), m.group(4), m.group(6))
        )
        month = _MONTHS.get(mon.lower()[:3])
        return _safe_date(int(year), month, int(day)) if month else None
    m = _NUM_DATE.search(text)
    if not m:
        return None
    a, b, c = m.groups()
    if len(a) == 4:
        return _safe_date(int(a), int(b), int(c))
    year = int(c) + (2000 if len(c) == 2 else 0)
    first, second = int(a), int(b)
    dotted = "." in m.group(0)  # 05.03.2024: dotted numeric dates are day-first where they are written
    order = (
        "dmy"
        if first > 12
        else "mdy"
        if second > 12
        else (prefer or evidence or ("dmy" if dotted else "mdy"))
    )
    return _safe_date(year, second, first) if order == "dmy" else _safe_date(year, first, second)


def _safe_date(year: int, month: int | None, day: int) -> date | None:
    try:
        return date(year, month or 0, day) if 1990 <= year <= 2100 else None
    except ValueError:
        return None


def _date_evidence(lines: list[Line], currency: str | None) -> str | None:
    """Day-first or month-first, from a numeric date elsewhere with a part > 12, else from the currency."""
    for line in lines:
        for m in _NUM_DATE.finditer(line.text):
            a, b, _ = m.groups()
            if len(a) <= 2 and int(a) > 12:
                return "dmy"
            if len(a) <= 2 and int(b) > 12:
                return "mdy"
    if currency in ("EUR", "GBP"):
        return "dmy"
    if currency == "USD":
        return "mdy"
    return None


def extract_fields(lines: list[Line], *, date_order: str | None = None) -> Receipt:
    """Every field :class:`~roomscan.receipts.result.Receipt` holds, from grouped lines.

    Args:
        lines: from :func:`~roomscan.receipts.layout.group_lines`, top to bottom.
        date_order: ``"dmy"`` or ``"mdy"`` to settle ambiguous numeric dates; ``None`` reads the receipt's own
            evidence (another date with a day over 12, then the currency), defaulting to month first.
    """
    conf: dict[str, float] = {}
    texts = [line.text for line in lines]
    amounts = [parse_amount(_money_part(line)) for line in lines]
    currency, currency_conf = _currency(amounts, texts)
    conf["currency"] = currency_conf

    def first(pattern: re.Pattern[str], exclude: re.Pattern[str] | None = None, start: int = 0) -> int | None:
        for i in range(start, len(lines)):
            if pattern.search(texts[i]) and amounts[i] and not (exclude and exclude.search(texts[i])):
                return i
        return None

    sub_i = first(_SUBTOTAL)
    total_i = first(_TOTAL, exclude=_SUBTOTAL, start=sub_i + 1 if sub_i is not None else 0)
    if total_i is None:
        total_i = first(_TOTAL, exclude=_SUBTOTAL)
    tax_is = [
        i
        for i in range(len(lines))
        if _TAX.search(texts[i]) and amounts[i] and i not in (sub_i, total_i) and not _TOTAL.search(texts[i])
    ]
    tip_i = first(_TIP)

    def value(i: int | None, name: str) -> Decimal | None:
        if i is None:
            conf[name] = 0.0
            return None
        conf[name] = round(lines[i].confidence, 3)
        return amounts[i][0]  # type: ignore[index]

    subtotal, total, tip = value(sub_i, "subtotal"), value(total_i, "total"), value(tip_i, "tip")
    taxes = tuple(TaxLine(_label(texts[i]), amounts[i][0], _rate(texts[i])) for i in tax_is)  # type: ignore[index]
    conf["taxes"] = round(min((lines[i].confidence for i in tax_is), default=0.0), 3)

    summary = [i for i in (sub_i, total_i, tip_i, *tax_is) if i is not None]
    header_end = _header_end(texts)
    items_end = min(summary) if summary else len(lines)
    items, item_conf = _items(lines, texts, amounts, header_end, items_end)
    conf["items"] = item_conf

    payment, pay_conf = None, 0.0
    for i, text in enumerate(texts):
        m = _PAYMENT.search(text)
        if m and (total_i is None or i >= min(summary, default=0)):
            payment, pay_conf = _PAYMENTS[m.group(1).lower()], lines[i].confidence
            break
    conf["payment_method"] = round(pay_conf, 3)

    merchant, address, phone, head_conf = _header(lines[:header_end] if header_end else lines[:4])
    conf.update(head_conf)
    evidence = date_order or _date_evidence(lines, currency)
    when, when_t = None, None
    conf["date"] = conf["time"] = 0.0
    for line in lines:
        if when is None and (d := parse_date(line.text, date_order, evidence)):
            when, conf["date"] = (
                d,
                round(line.confidence * (1.0 if _unambiguous(line.text) or date_order else 0.8), 3),
            )
        if when_t is None and (t := _parse_time(line.text)):
            when_t, conf["time"] = t, round(line.confidence, 3)

    check = _check(items, subtotal, taxes, tip, total)
    if total is not None and check.total_ok is False:
        conf["total"] = round(conf["total"] * 0.6, 3)
    return Receipt(
        merchant=merchant,
        address=address,
        phone=phone,
        date=when,
        time=when_t,
        currency=currency,
        items=items,
        subtotal=subtotal,
        taxes=taxes,
        tip=tip,
        total=total,
        payment_method=payment,
        check=check,
        confidence=conf,
        raw_text="\n".join(texts),
    )


def _money_part(line: Line) -> str:
    """The text holding a line's price: its right-most cell when there are several, else the whole line."""
    text = line.cells[-1] if len(line.cells) > 1 else line.text
    # OCR often reads a decimal point as a colon; fix it only next to a currency symbol (never in "10:17").
    return _COLON_MONEY.sub(lambda m: f"{m.group(1) or m.group(3)}.{m.group(2) or m.group(4)}", text)


def _currency(amounts: list[tuple[Decimal, str | None] | None], texts: list[str]) -> tuple[str | None, float]:
    codes = [a[1] for a in amounts if a and a[1]]
    if not codes:
        for text in texts:
            for symbol, code in _SYMBOLS.items():
                if symbol in text:
                    return code, 0.6
        return None, 0.0
    best = max(set(codes), key=codes.count)
    return best, round(codes.count(best) / len(codes), 3)


def _label(text: str) -> str:
    return _MONEY.sub("", text).strip(" :") or "tax"


def _rate(text: str) -> Decimal | None:
    m = re.search(r"(\d{1,2}(?:[.,]\d{1,2})?)\s?%", text)
    return Decimal(m.group(1).replace(",", ".")) if m else None


def _header_end(texts: list[str]) -> int:
    """Index of the first line after the header block (the first date/time line or priced line)."""
    for i, text in enumerate(texts):
        if parse_date(text) or _TIME.search(text) or parse_amount(text):
            return i
    return min(len(texts), 4)


def _clean_header(text: str) -> str:
    """Drop the edge debris OCR reads from the paper's border or a fold (``|``, ``_``, stray quotes)."""
    return re.sub(r"^[\s|_'\"`~]+|[\s|_'\"`~]+$", "", text)


def _header(lines: list[Line]) -> tuple[str | None, str | None, str | None, dict[str, float]]:
    merchant = address = phone = None
    conf = {"merchant": 0.0, "address": 0.0, "phone": 0.0}
    rest: list[Line] = []
    for line in lines:
        text = _clean_header(line.text)
        digits = re.sub(r"\D", "", text)
        m = _PHONE.search(text)
        if (
            phone is None
            and m
            and 7 <= len(re.sub(r"\D", "", m.group(1))) <= 15
            and (re.search(r"\b(tel|phone|ph)\b", text, re.IGNORECASE) or len(digits) >= 10)
        ):
            phone, conf["phone"] = m.group(1).strip(), round(line.confidence, 3)
        elif merchant is None and sum(c.isalpha() for c in text) >= 3:
            merchant, conf["merchant"] = text, round(line.confidence * 0.9, 3)
        elif merchant is not None:
            rest.append(line)
    if rest:
        address = ", ".join(_clean_header(line.text) for line in rest[:3])
        conf["address"] = round(min(line.confidence for line in rest[:3]) * 0.8, 3)
    return merchant, address, phone, conf


def _items(
    lines: list[Line], texts: list[str], amounts: list, start: int, end: int
) -> tuple[tuple[LineItem, ...], float]:  # type: ignore[type-arg]
    items: list[LineItem] = []
    confs: list[float] = []
    pending_name: str | None = None
    for i in range(start, end):
        text = texts[i]
        if amounts[i] is None:
            if parse_date(text) or _TIME.search(text):
                continue
            pending_name = text.strip() if sum(c.isalpha() for c in text) >= 2 else None
            continue
        if _NON_ITEM.search(text) or _PAYMENT.search(text) or _TOTAL.search(text):
            pending_name = None
            continue
        amount = amounts[i][0]
        name = (lines[i].cells[0] if len(lines[i].cells) > 1 else _MONEY.sub("", text)).strip(" :")
        qty, unit = 1, None
        at = _QTY_AT.match(name)
        if pending_name and at:
            unit_read = parse_amount(at.group(2))
            qty, name = int(at.group(1)), pending_name
            unit = unit_read[0] if unit_read else None
        elif m := _QTY_X.match(name):
            qty, name = int(m.group(1)), m.group(2).strip()
        if qty > 1 and unit is None:
            unit = (amount / qty).quantize(_CENT)
        pending_name = None
        if not name or sum(c.isalpha() for c in name) < 2:
            continue
        items.append(
            LineItem(name=name, quantity=qty, unit_price=unit if unit is not None else amount, amount=amount)
        )
        confs.append(lines[i].confidence)
    return tuple(items), round(min(confs, default=0.0), 3)


def _unambiguous(text: str) -> bool:
    m = _NUM_DATE.search(text)
    return not m or len(m.group(1)) == 4 or int(m.group(1)) > 12 or int(m.group(2)) > 12


def _parse_time(text: str) -> time | None:
    for m in _TIME.finditer(text):
        if _NUM_DATE.search(text) and m.start() < (_NUM_DATE.search(text).end()):  # type: ignore[union-attr]
            continue  # "05.03.2024" is not 05:03
        hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        suffix = (m.group(4) or "").lower().replace(".", "")
        if suffix == "pm" and hour < 12:
            hour += 12
        elif suffix == "am" and hour == 12:
            hour = 0
        if not suffix and not re.search(r"\b(time|at)\b|:", text, re.IGNORECASE):
            continue
        if ":" not in m.group(0) and not suffix:
            continue  # "12.50" is a price, not half past twelve
        return time(hour, minute, second)
    return None


def _check(
    items: tuple[LineItem, ...],
    subtotal: Decimal | None,
    taxes: tuple[TaxLine, ...],
    tip: Decimal | None,
    total: Decimal | None,
) -> ArithmeticCheck:
    items_sum = sum((i.amount for i in items), Decimal(0)) if items else None
    items_ok = None if items_sum is None or subtotal is None else abs(items_sum - subtotal) <= _CENT
    base = subtotal if subtotal is not None else items_sum
    tax = sum((t.amount for t in taxes), Decimal(0))
    expected = None if base is None or total is None else base + tax + (tip or Decimal(0))
    total_ok = None if expected is None else abs(expected - total) <= _CENT
    notes = []
    if items_ok is False:
        notes.append(f"items add up to {items_sum}, the subtotal says {subtotal}")
    if total_ok is False:
        notes.append(f"subtotal + tax + tip = {expected}, the total says {total}")
    if total is None:
        notes.append("no total found")
    return ArithmeticCheck(
        items_sum=items_sum,
        items_match_subtotal=items_ok,
        expected_total=expected,
        total_ok=total_ok,
        notes=tuple(notes),
    )
