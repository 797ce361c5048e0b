"""The typed, frozen result of reading a receipt, and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from types import MappingProxyType
from typing import Any

__all__ = ["FIELDS", "ArithmeticCheck", "LineItem", "Receipt", "TaxLine"]

# Fields carrying a confidence in Receipt.confidence.
FIELDS = (
    "merchant",
    "address",
    "phone",
    "date",
    "time",
    "currency",
    "items",
    "subtotal",
    "taxes",
    "tip",
    "total",
    "payment_method",
)


@dataclass(frozen=True)
class LineItem:
    """One purchased line: ``quantity`` x ``unit_price`` = ``amount`` (as printed)."""

    name: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class TaxLine:
    """A tax row: its label as printed (``VAT 20%``), amount, and rate in percent when printed."""

    label: str
    amount: Decimal
    rate: Decimal | None = None


@dataclass(frozen=True)
class ArithmeticCheck:
    """Whether the receipt adds up. ``None`` means a side was missing, so nothing could be checked.

    Attributes:
        items_sum: the line items' amounts added up (``None`` without items).
        items_match_subtotal: items_sum equals the printed subtotal (to the cent).
        expected_total: subtotal (or items_sum) + taxes + tip.
        total_ok: expected_total equals the printed total (to the cent).
        notes: what did not add up, in words.
    """

    items_sum: Decimal | None = None
    items_match_subtotal: bool | None = None
    expected_total: Decimal | None = None
    total_ok: bool | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Receipt:
    """Structured expense data read from one receipt. Missing fields are ``None`` with confidence 0.

    Attributes:
        date, time: ISO 8601 via :meth:`to_dict`; ambiguous numeric dates are settled by the receipt's evidence.
        currency: ISO 4217 code from printed symbols/codes; ``None`` when the receipt shows none.
        total: the printed total only; never computed from other fields (see ``check``).
        confidence: per field (names in :data:`FIELDS`), 0..1, from OCR confidence, lowered by ambiguity or a
            failed arithmetic check.
        raw_text: every line read, top to bottom.
    """

    merchant: str | None = None
    address: str | None = None
    phone: str | None = None
    date: date | None = None
    time: time | None = None
    currency: str | None = None
    items: tuple[LineItem, ...] = ()
    subtotal: Decimal | None = None
    taxes: tuple[TaxLine, ...] = ()
    tip: Decimal | None = None
    total: Decimal | None = None
    payment_method: str | None = None
    check: ArithmeticCheck = field(default_factory=ArithmeticCheck)
    confidence: MappingProxyType[str, float] | dict[str, float] = field(default_factory=dict)
    raw_text: str = ""
    source: str | None = None
    engine: str | None = None

    def __post_init__(self) -> None:
        full = {name: 0.0 for name in FIELDS} | dict(self.confidence)
        object.__setattr__(self, "confidence", MappingProxyType(full))

    @property
    def tax(self) -> Decimal | None:
        """All tax rows added up, or ``None`` when none was printed."""
        return sum((t.amount for t in self.taxes), Decimal(0)) if self.taxes else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts as strings (exact decimals), date/time ISO 8601."""

        def money(v: Decimal | None) -> str | None:
            return None if v is None else f"{v:.2f}"

        return {
            "source": self.source,
            "engine": self.engine,
            "merchant": self.merchant,
            "address": self.address,
            "phone": self.phone,
            "date": self.date.isoformat() if self.date else None,
            "time": self.time.isoformat(timespec="minutes") if self.time else None,
            "currency": self.currency,
            "items": [
                {
                    "name": i.name,
                    "quantity": i.quantity,
                    "unit_price": money(i.unit_price),
                    "amount": money(i.amount),
                }
                for i in self.items
            ],
            "subtotal": money(self.subtotal),
            "taxes": [
                {
                    "label": t.label,
                    "amount": money(t.amount),
                    "rate": str(t.rate) if t.rate is not None else None,
                }
                for t in self.taxes
            ],
            "tax": money(self.tax),
            "tip": money(self.tip),
            "total": money(self.total),
            "payment_method": self.payment_method,
            "check": {
                "items_sum": money(self.check.items_sum),
                "items_match_subtotal": self.check.items_match_subtotal,
                "expected_total": money(self.check.expected_total),
                "total_ok": self.check.total_ok,
                "notes": list(self.check.notes),
            },
            "confidence": dict(self.confidence),
            "raw_text": self.raw_text,
        }
