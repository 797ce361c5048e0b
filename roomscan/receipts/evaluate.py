"""Accuracy on a folder of receipt images with ground truth: per-field exact match and raw-text CER.

Ground truth is ``<stem>.json`` beside each image (the schema :mod:`roomscan.receipts.synth` writes): any of
``merchant, address, phone, date (YYYY-MM-DD), time (HH:MM), currency, subtotal, tax, tip, total, payment_method``,
``items`` (a list with ``amount``) and ``text`` (the full text, for the character error rate). A field absent from
the JSON is not scored; ``null`` means "the receipt does not show it" and scores a match only when nothing is read.

Example:
    >>> report = evaluate_folder("eval/degraded", ReceiptReader("tesseract"))   # doctest: +SKIP
    >>> report.accuracy["total"], report.cer                                     # doctest: +SKIP
    (0.975, 0.031)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from roomscan.detection.image import IMAGE_SUFFIXES
from roomscan.errors import RoomscanError
from roomscan.receipts.pipeline import ReceiptReader

__all__ = ["EVAL_FIELDS", "EvalReport", "cer", "evaluate_folder", "find_pairs"]

EVAL_FIELDS = (
    "merchant",
    "phone",
    "date",
    "time",
    "currency",
    "subtotal",
    "tax",
    "tip",
    "total",
    "payment_method",
    "items",
)


@dataclass(frozen=True)
class EvalReport:
    """Per-field accuracy (fraction of receipts exactly right), mean CER, and seconds per receipt."""

    n: int
    accuracy: dict[str, float]
    cer: float
    seconds_per_receipt: float
    failures: tuple[str, ...] = ()
    misses: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "cer": self.cer,
            "seconds_per_receipt": self.seconds_per_receipt,
            "failures": list(self.failures),
        }


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), O(len(a) * len(b)) time, O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(predicted: str, truth: str) -> float:
    """Character error rate: edit distance over the truth's length, whitespace runs collapsed to one space."""
    p, t = " ".join(predicted.split()), " ".join(truth.split())
    if not t:
        return 0.0 if not p else 1.0
    return levenshtein(p, t) / len(t)


def _norm(name: str, value: object) -> object:
    if value is None or value == "" or value == []:
        return None
    if name in ("subtotal", "tax", "tip", "total"):
        try:
            return Decimal(str(value)).quantize(Decimal("0.01"))
        except InvalidOperation:
            return str(value)
    if name == "items":
        return sorted(_norm("total", item.get("amount")) for item in value)  # type: ignore[union-attr, attr-defined]
    if name == "phone":
        return re.sub(r"\D", "", str(value))
    return re.sub(r"[^a-z0-9]", "", str(value).lower())


def find_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, truth JSON) pairs in ``folder``, sorted by name. Images without a JSON are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RoomscanError(
            f"{folder}: not a folder; give a folder of receipt images with <name>.json beside each"
        )
    pairs = [
        (p, p.with_suffix(".json"))
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and p.with_suffix(".json").exists()
    ]
    if not pairs:
        raise RoomscanError(f"{folder}: no receipt images with ground truth (<name>.json beside each image)")
    return pairs


def evaluate_folder(
    folder: str | Path, reader: ReceiptReader, *, on_progress: Callable[[Path], None] | None = None
) -> EvalReport:
    """Read every receipt in ``folder`` and score it against its JSON; unreadable files count as failures."""
    hits: dict[str, list[bool]] = {name: [] for name in EVAL_FIELDS}
    misses: dict[str, list[str]] = {name: [] for name in EVAL_FIELDS}
    cers: list[float] = []
    failures: list[str] = []
    seconds = 0.0
    for image, truth_path in find_pairs(folder):
        try:
            truth = json.loads(truth_path.read_text())
        except (OSError, ValueError) as exc:
            raise RoomscanError(f"{truth_path}: not valid ground-truth JSON ({exc})") from exc
        start = time.perf_counter()
        try:
            predicted = reader.read(image).to_dict()
        except RoomscanError as exc:
            failures.append(f"{image.name}: {exc}")
            predicted = {}
        seconds += time.perf_counter() - start
        for name in EVAL_FIELDS:
            if name in truth:
                ok = _norm(name, predicted.get(name)) == _norm(name, truth[name])
                hits[name].append(ok)
                if not ok:
                    misses[name].append(f"{image.name}: read {predicted.get(name)!r}, truth {truth[name]!r}")
        if "text" in truth:
            cers.append(cer(str(predicted.get("raw_text", "")), str(truth["text"])))
        if on_progress:
            on_progress(image)
    n = max((len(v) for v in hits.values()), default=0) or len(cers)
    return EvalReport(
        n=n,
        accuracy={k: round(sum(v) / len(v), 4) for k, v in hits.items() if v},
        cer=round(sum(cers) / len(cers), 4) if cers else float("nan"),
        seconds_per_receipt=round(seconds / max(n, 1), 3),
        failures=tuple(failures),
        misses={k: v for k, v in misses.items() if v},
    )
