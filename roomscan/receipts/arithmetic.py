"""Does a receipt add up: the arithmetic check, and the one repair arithmetic may make.

The repair is for a currency sign OCR read as a digit (``$62.80`` as ``862.80``, ``S``/``5``/``8`` are the usual
readings): the leading digit is dropped only when the amounts then add up; likewise a decimal point OCR lost
(``Tea | 793``) is restored only when the items or the total then add up. Every repair is noted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from roomscan.receipts.layout import Line
from roomscan.receipts.money import Amount, to_decimal
from roomscan.receipts.result import ArithmeticCheck, LineItem, TaxLine

__all__ = ["check", "repair_misread_signs", "restore_lost_point_item", "restore_lost_point_tax"]

_CENT = Decimal("0.01")


def _without_sign(amount: Amount | None, printed: str | None) -> Amount | None:
    """``862.80`` -> ``62.80``: the amount as if its first digit were a currency sign OCR misread, else None.

    Only for a receipt whose currency is written with a sign before the number, on an amount with no sign of its
    own and at least two digits before the point.
    """
    if (
        amount is None
        or amount.symbol
        or printed not in ("USD", "GBP", "CAD", "AUD", "NZD", "SGD", "HKD", None)
    ):
        return None
    digits = amount.digits
    if len(re.split(r"[.,]", digits)[0]) < 2 or digits[0] not in "835694":
        return None
    value = to_decimal(digits[1:].lstrip(",. "))
    if value is None:
        return None
    return Amount(value, amount.currency, digits[1:], "?", True)


def repair_misread_signs(
    amounts: list[Amount | None],
    sub_i: int | None,
    total_i: int | None,
    tax_is: list[int],
    tip_i: int | None,
    item_rows: list[int],
    printed: str | None,
    notes: list[str],
) -> set[int]:
    """Fix amounts whose currency sign OCR read as a digit, where (and only where) the arithmetic then agrees.

    Tries one amount at a time: each item against the subtotal, then the subtotal, each tax, the tip and the
    total against the rest. Returns the repaired line indices; each repair is noted.
    """

    def val(i: int | None) -> Decimal:
        return amounts[i].value if i is not None and amounts[i] else Decimal(0)  # type: ignore[union-attr]

    def items_sum() -> Decimal:
        return sum((val(i) for i in item_rows), Decimal(0))

    def total_ok() -> bool:
        base = val(sub_i) if sub_i is not None else items_sum()
        expected = base + sum((val(i) for i in tax_is), Decimal(0)) + val(tip_i)
        return total_i is not None and abs(expected - val(total_i)) <= _CENT

    def items_ok() -> bool:
        return sub_i is not None and bool(item_rows) and abs(items_sum() - val(sub_i)) <= _CENT

    repaired: set[int] = set()

    def attempt(candidates: list[int], test: Callable[[], bool]) -> None:
        for i in candidates:
            alt = _without_sign(amounts[i], printed)
            if alt is None or i in repaired:
                continue
            before = amounts[i]
            amounts[i] = alt
            if test():
                repaired.add(i)
                notes.append(f"read {before.digits} as {alt.digits}: a currency sign read as a digit")  # type: ignore[union-attr]
                return
            amounts[i] = before

    if sub_i is not None and item_rows and not items_ok():
        attempt([*item_rows, sub_i], items_ok)
    if total_i is not None and not total_ok():
        attempt(
            [total_i, *([sub_i] if sub_i is not None else []), *tax_is, *([tip_i] if tip_i else [])], total_ok
        )
        if not total_ok() and sub_i is None:
            attempt(item_rows, total_ok)
    return repaired


def check(
    items: tuple[LineItem, ...],
    subtotal: Decimal | None,
    taxes: tuple[TaxLine, ...],
    tip: Decimal | None,
    total: Decimal | None,
    repairs: list[str] | None = None,
) -> ArithmeticCheck:
    items_sum = sum((i.amount for i in items), Decimal(0)) if items else None
    items_ok = None if items_sum is None or subtotal is None else abs(items_sum - subtotal) <= _CENT
    base = subtotal if subtotal is not None else items_sum
    tax = sum((t.amount for t in taxes), Decimal(0))
    expected = None if base is None or total is None else base + tax + (tip or Decimal(0))
    total_ok = None if expected is None or total is None else abs(expected - total) <= _CENT
    notes = list(repairs or [])
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


def _point_lost(line: Line) -> Amount | None:
    """``Tea | 793``: a price whose decimal point OCR lost, as the amount it would be (7.93), else None."""
    if len(line.cells) < 2 or sum(c.isalpha() for c in line.cells[0]) < 2:
        return None
    m = re.fullmatch(r"[$€£]?(\d{3,5})", line.cells[-1].strip())
    if not m:
        return None
    digits = f"{m.group(1)[:-2]}.{m.group(1)[-2:]}"
    return Amount(Decimal(digits), None, digits, None, False)


def restore_lost_point_tax(
    lines: list[Line],
    amounts: list[Amount | None],
    is_tax: list[bool],
    sub_i: int | None,
    total_i: int | None,
    tax_is: list[int],
    tip_i: int | None,
    notes: list[str],
) -> set[int]:
    """A tax line read without its decimal point (``TAX 5% | 172``), restored only when the total then adds up."""
    if tax_is or total_i is None or sub_i is None:
        return set()
    base = amounts[sub_i].value + (amounts[tip_i].value if tip_i is not None else Decimal(0))  # type: ignore[union-attr]
    for i, line in enumerate(lines):
        alt = _point_lost(line) if amounts[i] is None and is_tax[i] else None
        if alt and abs(base + alt.value - amounts[total_i].value) <= _CENT:  # type: ignore[union-attr]
            amounts[i] = alt
            tax_is.append(i)
            notes.append(f"read {line.cells[-1]} as {alt.digits}: a decimal point OCR lost")
            return {i}
    return set()


def restore_lost_point_item(
    lines: list[Line],
    amounts: list[Amount | None],
    body: list[int],
    sub_i: int | None,
    item_rows: list[int],
    notes: list[str],
) -> set[int]:
    """An item read without its decimal point (``Tea | 793``), restored only when the items then match the subtotal."""
    if sub_i is None or amounts[sub_i] is None:
        return set()
    missing = amounts[sub_i].value - sum((amounts[i].value for i in item_rows), Decimal(0))  # type: ignore[union-attr]
    for i in body:
        if amounts[i] is None and (alt := _point_lost(lines[i])) and abs(alt.value - missing) <= _CENT:
            amounts[i] = alt
            notes.append(f"read {lines[i].cells[-1]} as {alt.digits}: a decimal point OCR lost")
            return {i}
    return set()
