"""A read receipt as a CSV row: the columns ``roomscan receipt batch`` writes and the web page downloads.

Example:
    >>> row = csv_row(receipt.to_dict(), "lunch.jpg")     # doctest: +SKIP
    >>> to_csv([row]).splitlines()[0].split(",")[:3]       # doctest: +SKIP
    ['file', 'merchant', 'address']
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from roomscan.receipts.result import FIELDS

__all__ = ["CSV_COLUMNS", "ONE_VALUE_FIELDS", "csv_row", "to_csv"]

# The receipt's one-value fields, in reading order (its confidence fields, less the item list; "tax" is the
# summed tax lines).
ONE_VALUE_FIELDS = tuple("tax" if f == "taxes" else f for f in FIELDS if f != "items")
CSV_COLUMNS = ("file", *ONE_VALUE_FIELDS, "items", "total_ok", "total_confidence", "error")


def csv_row(data: dict[str, Any], file: str | None) -> dict[str, object]:
    """One CSV row from :meth:`~roomscan.receipts.result.Receipt.to_dict` output: fields, item count, check."""
    row: dict[str, object] = {"file": file}
    row.update({k: data[k] for k in ONE_VALUE_FIELDS})
    row["items"] = len(data["items"])
    row["total_ok"] = data["check"]["total_ok"]
    row["total_confidence"] = data["confidence"]["total"]
    return row


def to_csv(rows: Iterable[dict[str, object]]) -> str:
    """Rows as CSV text with the :data:`CSV_COLUMNS` header."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
