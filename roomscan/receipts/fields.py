"""Receipt fields from text lines: merchant, address, phone, date/time, currency, items, totals, payment.

Everything here is plain text rules over :class:`~roomscan.receipts.layout.Line`: money is the right-most amount
on a line; keyword lines (subtotal, tax, tip, total in English, German, French, Italian and Spanish; payment,
change) are summary rows; reference lines (receipt/invoice numbers, cashier, table, order) are never items; other
priced lines between the header and the summary are items. Arithmetic is cross-checked and the result reported,
never used to make up a missing value: a receipt with no readable TOTAL line has ``total=None``. The one repair
arithmetic may make is evidence-backed: a currency sign OCR read as a digit (``$62.80`` as ``862.80``) is dropped
only when the amounts then add up, and the repair is noted in ``check.notes``.
"""

from __future__ import annotations

import re
from decimal import Decimal

from roomscan.receipts import arithmetic, region
from roomscan.receipts.arithmetic import repair_misread_signs, restore_lost_point_item, restore_lost_point_tax
from roomscan.receipts.dates import find_date, parse_date, parse_time
from roomscan.receipts.layout import Line
from roomscan.receipts.money import Amount, find_amount, parse_amount, symbol_currency
from roomscan.receipts.result import LineItem, Receipt, TaxLine

__all__ = ["extract_fields", "parse_amount", "parse_date", "parse_time"]

_SUBTOTAL = re.compile(
    r"\bsub\s*-?\s*totale?\b|\bzwischensumme\b|\bsous\s*-?\s*total\b|\bnet\s+amount\b|\bbase\s+imponible\b"
    r"|\bimponibile\b",
    re.IGNORECASE,
)
_TOTAL = re.compile(
    r"\b(grand\s+)?total[ae]?\b|\bamount\s+due\b|\bbalance(\s+due)?\b|\bto\s+pay\b|\bsumme\b|\bgesamt(betrag)?\b"
    r"|\bnet\s+[àa]\s+payer\b|\bimporte\b|\bzu\s+zahlen\b|\btotaal\b",
    re.IGNORECASE,
)
_TAX = re.compile(r"\b(tax|vat|gst|hst|pst|mw\w?st|ust|tva|iva|btw|moms)\b", re.IGNORECASE)
_TIP = re.compile(r"\b(tip|gratuity|service\s+charge|trinkgeld|pourboire|mancia|propina)\b", re.IGNORECASE)
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
    "girocard": "debit",
    "ec-karte": "debit",
    "bar": "cash",
    "espèces": "cash",
    "especes": "cash",
    "contanti": "cash",
    "efectivo": "cash",
}
_PAYMENT = re.compile(r"\b(" + "|".join(_PAYMENTS) + r")\b", re.IGNORECASE)
_NON_ITEM = re.compile(
    r"\b(change|tender(ed)?|card|auth|approval|balance|rounding|discount\s+total|r[üu]ckgeld|wechselgeld"
    r"|gegeben|rendu|resto|cambio)\b",
    re.IGNORECASE,
)
# Lines that identify the sale or who served it: "Receipt 74632", "Cashier: Anna", "Table 4", "Order #123".
_REFERENCE = re.compile(
    r"^\W*(receipt|invoice|inv|ticket|bon|beleg|scontrino|factura|facture|check|chk|order|commande|pedido"
    r"|bestellung|documento|doc|trans(action)?|txn|till|reg(ister)?|terminal|pos|kasse|cassa|caisse|store"
    r"|table|tisch|tavolo|mesa|guests?|covers?|pax|cashier|server|served\s+by|kassier(er|in)?|caissi[eè]re?"
    r"|cassiere|cajer[oa]|le\s+atendi[oó]|es\s+bediente|operator|clerk|host|vendeur|bediener)\b"
    r"(?!\s+(salt|lamp|wine|water|cloth)\b)",
    re.IGNORECASE,
)
_PHONE = re.compile(r"(\+?\(?\d[\d\s().\-/]{7,}\d)")
_QTY_X = re.compile(r"^\s*(\d{1,3})\s*[xX×*]\s*([A-Za-zÀ-ÿ].+)$")
_QTY_AT = re.compile(r"^\s*(\d{1,3})\s*[@xX×]\s*(.+)$")
_CENT = Decimal("0.01")
_COLON_MONEY = re.compile(r"(?<=[$€£])\s?(\d+):(\d{2})\b|\b(\d+):(\d{2})(?=\s?[$€£])")


def extract_fields(lines: list[Line], *, date_order: str | None = None) -> Receipt:
    """Every field :class:`~roomscan.receipts.result.Receipt` holds, from grouped lines.

    Args:
        lines: from :func:`~roomscan.receipts.layout.group_lines`, top to bottom.
        date_order: ``"dmy"`` or ``"mdy"`` to settle ambiguous numeric dates; ``None`` reads the receipt's own
            evidence (another date with a day over 12, then the country of its address, phone or currency),
            defaulting to day first for dotted dates and month first otherwise.
    """
    conf: dict[str, float] = {}
    texts = [line.text for line in lines]
    amounts = [find_amount(_money_part(line)) for line in lines]
    for i, text in enumerate(texts):
        hit = find_date(text)
        if hit and amounts[i] and amounts[i].digits in text[hit.start : hit.end]:  # type: ignore[union-attr]
            amounts[i] = find_amount(_money_part(lines[i]).replace(text[hit.start : hit.end], " "))
    refs = [bool(_REFERENCE.search(t)) and not _TOTAL.search(t) for t in texts]
    for i in range(len(lines)):
        if refs[i] and not _TAX.search(texts[i]):
            amounts[i] = None  # "Invoice 2025.06": an identifier, not a price
    printed, currency_conf = _printed_currency(amounts, texts)
    country = region.guess_country(texts, printed)
    currency = _final_currency(amounts, texts, country, printed)
    conf["currency"] = currency_conf if printed else (0.5 if currency else 0.0)

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
        if _TAX.search(texts[i])
        and amounts[i]
        and i not in (sub_i, total_i)
        and not _TOTAL.search(texts[i])
        and not _SUBTOTAL.search(texts[i])
    ]
    tip_i = first(_TIP)

    summary = [i for i in (sub_i, total_i, tip_i, *tax_is) if i is not None]
    header_end = _header_end(texts)
    items_end = min(summary) if summary else len(lines)
    items, item_conf, item_rows = _items(lines, texts, amounts, refs, header_end, items_end)
    conf["items"] = item_conf

    notes: list[str] = []
    is_tax = [bool(_TAX.search(t)) and not refs[i] for i, t in enumerate(texts)]
    restored = restore_lost_point_tax(lines, amounts, is_tax, sub_i, total_i, tax_is, tip_i, notes)
    body = [i for i in range(header_end, items_end) if not refs[i]]
    restored |= restore_lost_point_item(lines, amounts, body, sub_i, item_rows, notes)
    repaired = repair_misread_signs(amounts, sub_i, total_i, tax_is, tip_i, item_rows, printed, notes)
    repaired |= restored
    if repaired:
        items, item_conf, item_rows = _items(lines, texts, amounts, refs, header_end, items_end)

    def value(i: int | None, name: str) -> Decimal | None:
        if i is None:
            conf[name] = 0.0
            return None
        conf[name] = round(lines[i].confidence * (0.9 if i in repaired else 1.0), 3)
        return amounts[i].value  # type: ignore[union-attr]

    subtotal, total, tip = value(sub_i, "subtotal"), value(total_i, "total"), value(tip_i, "tip")
    taxes = tuple(TaxLine(_label(texts[i]), amounts[i].value, _rate(texts[i])) for i in tax_is)  # type: ignore[union-attr]
    conf["taxes"] = round(min((lines[i].confidence for i in tax_is), default=0.0), 3)

    payment, pay_conf = None, 0.0
    for i, text in enumerate(texts):
        m = _PAYMENT.search(text)
        if m and (total_i is None or i >= min(summary, default=0)):
            payment, pay_conf = _PAYMENTS[m.group(1).lower()], lines[i].confidence
            break
    conf["payment_method"] = round(pay_conf, 3)

    head = [(line, ref) for line, ref in zip(lines, refs, strict=True)][: header_end or 4]
    merchant, address, phone, head_conf = _header([line for line, ref in head if not ref])
    conf.update(head_conf)
    evidence = _date_evidence(texts) or region.date_order(country) or _currency_order(currency)
    when, when_t = None, None
    conf["date"] = conf["time"] = 0.0
    for line in lines:
        if when is None and (hit := find_date(line.text, date_order, evidence)):
            settled = not hit.ambiguous or date_order is not None
            when, conf["date"] = hit.value, round(line.confidence * (1.0 if settled else 0.8), 3)
        if when_t is None and (t := parse_time(line.text)):
            when_t, conf["time"] = t, round(line.confidence, 3)

    check = arithmetic.check(items, subtotal, taxes, tip, total, notes)
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
    if len(line.cells) > 1 and not find_amount(text) and find_amount(line.text):
        text = line.text  # "Summe EUR" | "83,23": the price is in a middle cell
    # OCR often reads a decimal point as a colon; fix it only next to a currency symbol (never in "10:17").
    return _COLON_MONEY.sub(lambda m: f"{m.group(1) or m.group(3)}.{m.group(2) or m.group(4)}", text)


def _printed_currency(amounts: list[Amount | None], texts: list[str]) -> tuple[str | None, float]:
    """The currency printed on the receipt (symbols or ISO codes), by majority, and the share agreeing."""
    codes = [a.currency for a in amounts if a and a.currency]
    if not codes:
        for text in texts:
            if m := re.search(r"[$€£]|(?<![A-Za-z])(?:USD|EUR|GBP|CHF|CAD|AUD)(?![A-Za-z])", text):
                return symbol_currency(m.group(0)), 0.6
        return None, 0.0
    best = max(set(codes), key=codes.count)
    return best, round(codes.count(best) / len(codes), 3)


def _final_currency(
    amounts: list[Amount | None], texts: list[str], country: str | None, printed: str | None
) -> str | None:
    """The printed currency (a "$" read in the receipt's country: CAD in Canada), else the country's own."""
    if (
        printed == "USD"
        and country
        and not any(a and a.symbol and a.symbol.upper() == "USD" for a in amounts)
    ):
        return symbol_currency("$", country)
    return printed or region.currency_of(country)


def _currency_order(currency: str | None) -> str | None:
    return "mdy" if currency == "USD" else "dmy" if currency in ("EUR", "GBP", "CHF") else None


def _date_evidence(texts: list[str]) -> str | None:
    """Day-first or month-first, from a numeric date on the receipt with a part over 12."""
    for text in texts:
        for m in re.finditer(r"(?<![\d.,])([0-3]?\d)[/.\-]([01]?\d)[/.\-](?:\d{2,4})", text):
            a, b = int(m.group(1)), int(m.group(2))
            if a > 12 >= b:
                return "dmy"
        for m in re.finditer(r"(?<![\d.,])([01]?\d)[/.\-]([0-3]?\d)[/.\-](?:\d{2,4})", text):
            a, b = int(m.group(1)), int(m.group(2))
            if b > 12 >= a:
                return "mdy"
    return None


def _label(text: str) -> str:
    return re.sub(r"\s?\d[\d.,]*\d?\s?(?:[$€£]|[A-Z]{3})?\s*$", "", text).strip(" :") or "tax"


def _rate(text: str) -> Decimal | None:
    m = re.search(r"(\d{1,2}(?:[.,]\d{1,2})?)\s?%", text)
    return Decimal(m.group(1).replace(",", ".")) if m else None


def _header_end(texts: list[str]) -> int:
    """Index of the first line after the header block (the first date/time line or priced line)."""
    for i, text in enumerate(texts):
        if find_date(text) or parse_time(text) or parse_amount(text):
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
        if sum(c.isalnum() for c in text) < 2:
            continue  # a separator rule
        digits = re.sub(r"\D", "", text)
        m = _PHONE.search(text)
        if (
            phone is None
            and m
            and 7 <= len(re.sub(r"\D", "", m.group(1))) <= 15
            and (re.search(r"\b(tel|phone|ph|t[ée]l[ée]?fono?)\b", text, re.IGNORECASE) or len(digits) >= 9)
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
    lines: list[Line], texts: list[str], amounts: list[Amount | None], refs: list[bool], start: int, end: int
) -> tuple[tuple[LineItem, ...], float, list[int]]:
    """The items between the header and the summary, their lowest confidence, and their line indices."""
    items: list[LineItem] = []
    confs: list[float] = []
    rows: list[int] = []
    pending_name: str | None = None
    for i in range(start, end):
        text = texts[i]
        found = amounts[i]
        if refs[i] or (found is None and (find_date(text) or parse_time(text))):
            pending_name = None
            continue
        if found is None:
            pending_name = text.strip() if sum(c.isalpha() for c in text) >= 2 else None
            continue
        if _NON_ITEM.search(text) or _PAYMENT.search(text) or _TOTAL.search(text):
            pending_name = None
            continue
        amount = found.value
        name = (lines[i].cells[0] if len(lines[i].cells) > 1 else text[: text.rfind(found.digits)]).strip(
            " :"
        )
        name = re.sub(r"[\s.·_]{3,}$", "", name)  # dotted leaders: "Coffee ........ 3.50"
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
        name = re.sub(r"\s*(?:[$€£]|\b[A-Z]{3}\b)\s*$", "", name).strip(" '\"‘’`|_~")
        if not name or sum(c.isalpha() for c in name) < 2:
            continue
        items.append(
            LineItem(name=name, quantity=qty, unit_price=unit if unit is not None else amount, amount=amount)
        )
        confs.append(lines[i].confidence)
        rows.append(i)
    return tuple(items), round(min(confs, default=0.0), 3), rows
